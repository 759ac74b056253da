// Forward WhatsApp acks from a Node bot to whatsapp-session-plugin: POST {webhook_path}/bridge.
// Node 18+ (global fetch), built-ins only. Format and signature: see adapters/bridge.py.
//
//   BRIDGE_URL=https://bot.example.com/webhooks/bridge BRIDGE_SECRET=... node your-bot.js
'use strict';
const crypto = require('node:crypto');

const BRIDGE_URL = process.env.BRIDGE_URL || 'http://127.0.0.1:8080/webhooks/bridge';
const BRIDGE_SECRET = process.env.BRIDGE_SECRET || '';

// library: 'whatsapp-web.js' (ack -1..4) or 'baileys' (status 0..5); acks: [{id, ack, timestamp, to}]
async function forwardAcks(library, acks) {
  if (acks.length === 0) return;
  const body = JSON.stringify({ library, acks }); // sign exactly the bytes that are sent
  const signature = 'sha256=' + crypto.createHmac('sha256', BRIDGE_SECRET).update(body).digest('hex');
  try {
    const response = await fetch(BRIDGE_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Bridge-Signature': signature },
      body,
    });
    if (!response.ok) console.error(`bridge: HTTP ${response.status} for ${acks.length} ack(s)`);
  } catch (error) {
    console.error('bridge: cannot reach the session plugin:', error.message);
  }
}

// whatsapp-web.js: `client` is your Client instance.
function forwardWhatsappWebJs(client) {
  client.on('message_ack', (msg, ack) => {
    if (!msg.fromMe) return; // only the acks of messages we sent
    forwardAcks('whatsapp-web.js', [{ id: msg.id._serialized, ack, timestamp: Date.now(), to: msg.to }]);
  });
}

// Baileys: `sock` is your makeWASocket() instance.
// function forwardBaileys(sock) {
//   sock.ev.on('messages.update', (updates) => {
//     const acks = updates
//       .filter(({ key, update }) => key.fromMe && typeof update.status === 'number')
//       .map(({ key, update }) => ({ id: key.id, ack: update.status, timestamp: Date.now(), to: key.remoteJid }));
//     forwardAcks('baileys', acks);
//   });
// }

module.exports = { forwardAcks, forwardWhatsappWebJs };
