// MQTT.js (the `mqtt` package from the npm registry) through a broker on 127.0.0.1:PORT, 3.1.1
// and 5.0: overlapping subscriptions at every QoS, retained messages replaced and deleted, will
// on a dropped socket and none after DISCONNECT, offline queueing for a persistent session,
// unsubscribe, `$` topics, 5.0 properties. Run by broker/tests/mqttjs.rs: `node flows.js PORT`.
// Prints one PASS/FAIL line per check and a closing 'N passed, N failed'; exits 1 on a failure.
const mqtt = require('mqtt');
const port = +process.argv[2];
const url = `mqtt://127.0.0.1:${port}`;
let fails = 0, passes = 0;
const check = (name, ok) => { console.log((ok ? 'PASS ' : 'FAIL ') + name); if (ok) passes++; else fails++; };
const sleep = ms => new Promise(r => setTimeout(r, ms));
const conn = (opts) => new Promise((res, rej) => { const c = mqtt.connect(url, { reconnectPeriod: 0, ...opts }); c.once('connect', (ack) => res([c, ack])); c.once('error', rej); });
const collect = (c) => { const got = []; c.on('message', (t, p, pkt) => got.push({ t, p: p.toString(), qos: pkt.qos, retain: pkt.retain, props: pkt.properties })); return got; };
(async () => {
  for (const v of [4, 5]) {
    const tag = `v${v}`;
    const [sub] = await conn({ protocolVersion: v, clientId: `js-sub-${v}`, clean: true });
    const got = collect(sub);
    await sub.subscribeAsync({ [`js${v}/+/temp`]: { qos: 2 }, [`js${v}/#`]: { qos: 1 } });
    const [pub] = await conn({ protocolVersion: v, clientId: `js-pub-${v}` });
    for (const q of [0, 1, 2]) await pub.publishAsync(`js${v}/room/temp`, `q${q}`, { qos: q });
    await sleep(300);
    check(`${tag} overlapping subs deliver once each, at min(pub qos, max granted)`, got.length === 3 && got.map(m => m.qos).join() === '0,1,2');
    // retained, replaced, deleted
    await pub.publishAsync(`js${v}/ret/a`, 'one', { qos: 1, retain: true });
    await pub.publishAsync(`js${v}/ret/a`, 'two', { qos: 1, retain: true });
    const [late] = await conn({ protocolVersion: v, clientId: `js-late-${v}` });
    const lgot = collect(late);
    await late.subscribeAsync(`js${v}/ret/+`, { qos: 1 });
    await sleep(300);
    check(`${tag} retained replaced, delivered with retain flag`, lgot.length === 1 && lgot[0].p === 'two' && lgot[0].retain);
    await pub.publishAsync(`js${v}/ret/a`, '', { qos: 1, retain: true });
    const [late2] = await conn({ protocolVersion: v, clientId: `js-late2-${v}` });
    const l2 = collect(late2);
    await late2.subscribeAsync(`js${v}/ret/+`, { qos: 1 });
    await sleep(300);
    check(`${tag} empty retained payload deletes`, l2.length === 0);
    // will on a dropped socket
    const [wc] = await conn({ protocolVersion: v, clientId: `js-will-${v}`, will: { topic: `js${v}/will`, payload: 'gone', qos: 1 } });
    const before = got.length;
    wc.stream.destroy();
    await sleep(500);
    check(`${tag} will on dropped socket`, got.slice(before).some(m => m.t === `js${v}/will` && m.p === 'gone'));
    // clean disconnect: no will
    const [wc2] = await conn({ protocolVersion: v, clientId: `js-will2-${v}`, will: { topic: `js${v}/will2`, payload: 'x', qos: 1 } });
    await wc2.endAsync();
    await sleep(300);
    check(`${tag} no will after DISCONNECT`, !got.some(m => m.t === `js${v}/will2`));
    // persistent session: offline queueing
    const [ps, ack1] = await conn({ protocolVersion: v, clientId: `js-pers-${v}`, clean: false, properties: v === 5 ? { sessionExpiryInterval: 60 } : undefined });
    await ps.subscribeAsync(`js${v}/offline`, { qos: 1 });
    await ps.endAsync();
    for (let i = 0; i < 5; i++) await pub.publishAsync(`js${v}/offline`, `m${i}`, { qos: 1 });
    const ps2 = mqtt.connect(url, { reconnectPeriod: 0, protocolVersion: v, clientId: `js-pers-${v}`, clean: false, properties: v === 5 ? { sessionExpiryInterval: 60 } : undefined });
    const pgot = collect(ps2);
    const ack2 = await new Promise(r => ps2.once('connect', r));
    await sleep(500);
    check(`${tag} session present and 5 queued messages in order`, ack2.sessionPresent && pgot.map(m => m.p).join() === 'm0,m1,m2,m3,m4');
    await ps2.endAsync();
    // unsubscribe
    await sub.unsubscribeAsync(`js${v}/#`);
    const n = got.length;
    await pub.publishAsync(`js${v}/other`, 'x', { qos: 1 });
    await sleep(300);
    check(`${tag} unsubscribe stops delivery`, got.length === n);
    // $ topics not matched by #
    const [all] = await conn({ protocolVersion: v, clientId: `js-all-${v}` });
    const agot = collect(all);
    await all.subscribeAsync('#', { qos: 0 });
    await pub.publishAsync('$test/x', 'y', { qos: 0 });
    await sleep(300);
    check(`${tag} '#' does not match $ topics`, !agot.some(m => m.t.startsWith('$')));
    if (v === 5) {
      const [r] = await conn({ protocolVersion: 5, clientId: 'js-props' });
      const rg = collect(r);
      await r.subscribeAsync('js5/props', { qos: 1 });
      await pub.publishAsync('js5/props', 'p', { qos: 1, properties: { responseTopic: 'js5/resp', correlationData: Buffer.from('42'), userProperties: { a: '1' }, contentType: 'text/plain' } });
      await sleep(300);
      const m = rg[0];
      check('v5 properties forwarded', m && m.props.responseTopic === 'js5/resp' && m.props.correlationData.toString() === '42' && m.props.userProperties.a === '1' && m.props.contentType === 'text/plain');
      await r.endAsync();
    }
    for (const c of [sub, pub, late, late2, all]) await c.endAsync();
  }
  console.log(`${passes} passed, ${fails} failed`);
  process.exit(fails ? 1 : 0);
})().catch(e => { console.log('ERROR', e); process.exit(2); });
