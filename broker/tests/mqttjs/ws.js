#!/usr/bin/env node
// MQTT.js over WebSockets against wren-broker (run by broker/tests/websockets.rs):
// `ws.js WS_PORT WSS_PORT CA_FILE`. ws:// on several paths with MQTT 3.1 (subprotocol
// mqttv3.1), 3.1.1 and 5.0, and wss:// trusting the test CA: QoS 0, 1 and 2 round trips and a
// 200 kB message. Prints one PASS/FAIL line per check and 'N passed, N failed'; exits 1 on any
// failure.
'use strict';

const fs = require('fs');
const mqtt = require('mqtt');

const [wsPort, wssPort, caFile] = process.argv.slice(2);
let passed = 0;
let failed = 0;

function check(name, ok) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}`);
}

function connect(url, opts) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (e) => { c.end(true); reject(e); });
  });
}

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return pred();
}

async function roundTrip(name, url, opts) {
  try {
    const sub = await connect(url, { clientId: `${name}-sub`, ...opts });
    const pub = await connect(url, { clientId: `${name}-pub`, ...opts });
    const got = [];
    sub.on('message', (topic, payload, packet) => got.push([topic, payload.toString(), packet.qos]));
    await sub.subscribeAsync(`ws/${name}/#`, { qos: 2 });
    for (const qos of [0, 1, 2]) await pub.publishAsync(`ws/${name}/q${qos}`, `m${qos}`, { qos });
    const big = 'x'.repeat(200000);
    await pub.publishAsync(`ws/${name}/big`, big, { qos: 1 });
    await waitFor(() => got.length >= 4, 5000);
    check(`${name}: QoS 0, 1 and 2 delivered`, [0, 1, 2].every(
      (q) => got.some(([t, p, qq]) => t === `ws/${name}/q${q}` && p === `m${q}` && qq === q)));
    check(`${name}: a 200 kB message`, got.some(([t, p]) => t === `ws/${name}/big` && p === big));
    await pub.endAsync();
    await sub.endAsync();
  } catch (e) {
    check(`${name}: ${e}`, false);
    check(`${name}: (not run)`, false);
  }
}

(async () => {
  await roundTrip('ws311', `ws://127.0.0.1:${wsPort}/mqtt`, { protocolVersion: 4 });
  await roundTrip('ws5', `ws://127.0.0.1:${wsPort}/`, { protocolVersion: 5 });
  await roundTrip('ws31', `ws://127.0.0.1:${wsPort}/some/path`, { protocolVersion: 3, protocolId: 'MQIsdp' });
  await roundTrip('wss', `wss://127.0.0.1:${wssPort}/mqtt`, { ca: fs.readFileSync(caFile) });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
