'use strict';
// The connection kit's Node.js client: MQTT.js over TLS to the lab's Amlen, verifying the server's certificate and
// host name. Reads ../connection.env (environment variables of the same names win), dials KIT_ADDRESS, sends and
// verifies KIT_SERVER_NAME, subscribes to KIT_TOPIC, publishes there and waits for its own message.
// Usage: node kit.js [mtls|tls]   (mtls: client certificate on KIT_MTLS_PORT; tls: server-only on KIT_TLS_PORT)
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const mqtt = require('mqtt');

const LIMIT_MS = 60_000;
const kitDir = path.join(__dirname, '..');

function fail(message) {
  console.error(`error: ${String(message).replace(/\s*\n\s*/g, ' ').trim()}`);
  process.exit(1);
}

function setting(key) {
  const value = process.env[key];
  if (!value) fail(`${key} is not set in ${path.join(kitDir, 'connection.env')} or the environment`);
  return value;
}

function kitFile(key) {
  const file = path.resolve(kitDir, setting(key));
  try {
    return fs.readFileSync(file);
  } catch (err) {
    return fail(`${key}: ${err.message}`);
  }
}

function main() {
  const mode = process.argv[2] ?? 'mtls';
  if (mode !== 'mtls' && mode !== 'tls') fail(`unknown mode '${mode}': use mtls or tls`);
  try {
    process.loadEnvFile(path.join(kitDir, 'connection.env')); // sets only what the environment does not
  } catch (err) {
    fail(`connection.env: ${err.message}`);
  }
  setTimeout(() => fail(`no message back within ${LIMIT_MS / 1000} s`), LIMIT_MS);

  const serverName = setting('KIT_SERVER_NAME');
  const topic = setting('KIT_TOPIC');
  const options = {
    protocol: 'mqtts',
    host: setting('KIT_ADDRESS'),
    port: Number(setting(mode === 'mtls' ? 'KIT_MTLS_PORT' : 'KIT_TLS_PORT')),
    clientId: setting('KIT_CLIENT_ID'),
    ca: kitFile('KIT_CA'), // trust only the lab's CA
    rejectUnauthorized: true, // refuse a server whose certificate does not verify
    servername: net.isIP(serverName) ? undefined : serverName, // SNI (RFC 6066 allows no address there)
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert), // the name, not the address
    reconnectPeriod: 0, // report the first failure instead of retrying
    connectTimeout: LIMIT_MS,
  };
  if (mode === 'mtls') {
    options.cert = kitFile('KIT_CERT'); // the client certificate (and chain) the server asks for
    options.key = kitFile('KIT_KEY');
  }

  const payload = `hello from the Node.js kit ${crypto.randomBytes(4).toString('hex')}`;
  const client = mqtt.connect(options);
  client.on('error', (err) => fail(err.message));
  client.on('close', () => fail('the server closed the connection'));
  client.on('message', (received, message) => {
    if (received !== topic || message.toString() !== payload) return;
    console.log(`received ${received}: ${payload}`);
    client.removeAllListeners('close');
    client.end(false, () => process.exit(0));
  });
  client.on('connect', () => {
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      if (err) return fail(`subscribe to ${topic}: ${err.message}`);
      if (granted[0].qos === 128) return fail(`the server refused the subscription to ${topic}`);
      return client.publish(topic, payload, { qos: 1 }, (err2) => err2 && fail(`publish to ${topic}: ${err2.message}`));
    });
  });
}

main();
