// amlen-lab browser client: connect, subscribe, publish and log, over MQTT on secure WebSockets.
// window.LAB_CONFIG comes from the lab's config.js; window.mqtt from the vendored MQTT.js bundle.
"use strict";

(() => {
  const cfg = window.LAB_CONFIG || {};
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), host: $("host"), endpoint: $("endpoint"), port: $("port"), path: $("path"),
    clientId: $("client-id"), tls: $("tls"), url: $("url"), connect: $("connect"), disconnect: $("disconnect"),
    subTopic: $("sub-topic"), subQos: $("sub-qos"), subscribe: $("subscribe"), pubTopic: $("pub-topic"),
    pubQos: $("pub-qos"), pubPayload: $("pub-payload"), publish: $("publish"), log: $("log"), clear: $("clear"),
    mtlsNote: $("mtls-note"), clientP12: $("client-p12"), caFile: $("ca-file"), probe: $("probe"),
  };
  // How long to wait for CONNACK: a TLS failure ends sooner; a silent network needs a limit.
  const CONNECT_TIMEOUT_MS = 10000;
  let client = null;

  function brokerUrl() {
    const scheme = el.tls.checked ? "wss" : "ws";
    let path = el.path.value.trim() || "/";
    if (!path.startsWith("/")) path = "/" + path;
    return `${scheme}://${el.host.value.trim()}:${el.port.value}${path}`;
  }

  function refreshUrl() {
    el.url.textContent = brokerUrl();
    const origin = `${el.tls.checked ? "https" : "http"}://${el.host.value.trim()}:${el.port.value}/`;
    el.probe.href = origin;
    el.probe.textContent = origin;
    el.mtlsNote.hidden = el.endpoint.value !== "mtls";
  }

  function setStatus(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
  }

  function log(kind, text, topic) {
    const item = document.createElement("li");
    item.className = `entry ${kind}`;
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    const tag = document.createElement("span");
    tag.className = "kind";
    tag.textContent = kind;
    item.append(time, tag);
    if (topic !== undefined) {
      const t = document.createElement("span");
      t.className = "topic";
      t.textContent = topic;
      item.append(t);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text; // textContent, never innerHTML: payloads are untrusted
    item.append(body);
    el.log.prepend(item);
  }

  function setConnected(connected) {
    el.connect.disabled = connected;
    el.disconnect.disabled = !connected;
    el.subscribe.disabled = !connected;
    el.publish.disabled = !connected;
    for (const input of [el.host, el.endpoint, el.port, el.path, el.clientId, el.tls]) input.disabled = connected;
  }

  function failureText(url, detail) {
    const mutual = el.endpoint.value === "mtls";
    let hint;
    if (!el.tls.checked) {
      hint = "the lab's endpoints speak TLS only: tick TLS (wss://).";
    } else if (mutual) {
      hint = "the mutual-TLS port needs a client certificate from the lab CA imported into this browser, " +
        `and the lab CA trusted (\`${cfg.trustCommand || "invoke trust --install"}\`).`;
    } else {
      hint = "is the lab CA trusted by this browser? " +
        `Run \`${cfg.trustCommand || "invoke trust --install"}\` and restart the browser. ` +
        "Is the lab up? Check with `invoke status`.";
    }
    return `Could not connect to ${url} — ${hint}` + (detail ? ` [${detail}]` : "");
  }

  function connect() {
    const url = brokerUrl();
    let connected = false;
    let failed = false;
    setStatus("connecting", `Connecting to ${url} …`);
    log("info", `connecting to ${url}`);
    el.connect.disabled = true;
    try {
      client = window.mqtt.connect(url, {
        clientId: el.clientId.value.trim() || undefined,
        clean: true,
        // One attempt: a lab user should see a failure at once, not a silent retry loop.
        reconnectPeriod: 0,
        connectTimeout: CONNECT_TIMEOUT_MS,
        protocolVersion: 4,
      });
    } catch (err) {
      failed = true;
      setStatus("error", failureText(url, err && err.message));
      log("error", String(err && err.message || err));
      el.connect.disabled = false;
      return;
    }
    const fail = (detail) => {
      if (failed) return;
      failed = true;
      // Browsers hide TLS details from scripts: a certificate problem looks like a plain closed socket.
      setStatus("error", failureText(url, detail));
      log("error", `could not connect to ${url}${detail ? ": " + detail : ""}`);
      setConnected(false);
      if (client) client.end(true);
      client = null;
    };
    client.on("connect", () => {
      connected = true;
      setStatus("connected", `Connected to ${url} over ${el.tls.checked ? "TLS" : "plain TCP"}.`);
      log("info", `connected as ${client.options.clientId}`);
      setConnected(true);
    });
    client.on("error", (err) => {
      if (!connected) fail(err && err.message);
      else log("error", String(err && err.message || err));
    });
    client.on("close", () => {
      if (!connected) {
        fail("");
        return;
      }
      connected = false;
      if (!failed) {
        setStatus("idle", `Disconnected from ${url}.`);
        log("info", "disconnected");
      }
      setConnected(false);
      client = null;
    });
    client.on("message", (topic, payload) => {
      log("received", new TextDecoder().decode(payload), topic);
    });
  }

  function disconnect() {
    if (client) client.end();
  }

  function subscribe() {
    const topic = el.subTopic.value.trim();
    if (!client || !topic) return;
    client.subscribe(topic, { qos: Number(el.subQos.value) }, (err, granted) => {
      if (err) {
        log("error", `subscribe to ${topic} failed: ${err.message}`);
        return;
      }
      const qos = granted && granted[0] ? granted[0].qos : "?";
      if (qos === 128) log("error", `the broker refused the subscription to ${topic}`);
      else log("subscribed", `granted QoS ${qos}`, topic);
    });
  }

  function publish() {
    const topic = el.pubTopic.value.trim();
    if (!client || !topic) return;
    const payload = el.pubPayload.value;
    client.publish(topic, payload, { qos: Number(el.pubQos.value) }, (err) => {
      if (err) log("error", `publish to ${topic} failed: ${err.message}`);
      else log("published", payload, topic);
    });
  }

  function init() {
    if (!window.mqtt) {
      setStatus("error", "The MQTT client (vendor/mqtt.min.js) did not load: reinstall amlen-lab.");
      el.connect.disabled = true;
      return;
    }
    el.host.value = cfg.hostname || "testserver.getting.started";
    el.port.value = cfg.tlsPort || 8889;
    el.path.value = cfg.path || "/mqtt";
    el.tls.checked = cfg.tls !== false;
    el.clientId.value = "lab-browser-" + Math.random().toString(16).slice(2, 8);
    el.subTopic.value = `${cfg.topic || "amlen-lab/browser"}/#`;
    el.pubTopic.value = `${cfg.topic || "amlen-lab/browser"}/hello`;
    el.caFile.textContent = cfg.caFile || "myCA.pem";
    const client1 = (cfg.clientNames || ["test.client1"])[0];
    el.clientP12.textContent =
      `openssl pkcs12 -export -in ${client1}.crt -inkey ${client1}.key -out ${client1}.p12`;
    el.endpoint.addEventListener("change", () => {
      el.port.value = el.endpoint.value === "mtls" ? cfg.mtlsPort || 8890 : cfg.tlsPort || 8889;
      refreshUrl();
    });
    for (const input of [el.host, el.port, el.path, el.tls]) input.addEventListener("input", refreshUrl);
    el.tls.addEventListener("change", refreshUrl);
    el.connect.addEventListener("click", connect);
    el.disconnect.addEventListener("click", disconnect);
    el.subscribe.addEventListener("click", subscribe);
    el.publish.addEventListener("click", publish);
    el.clear.addEventListener("click", () => el.log.replaceChildren());
    refreshUrl();
    setStatus("idle", `Not connected. Press Connect to reach ${brokerUrl()}.`);
  }

  init();
})();
