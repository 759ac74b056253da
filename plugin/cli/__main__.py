from plugin.cli.main import main

raise SystemExit(main())
