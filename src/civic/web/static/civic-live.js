// Civic live updates: one WebSocket per page, shared by every live map and list on it.
//
//   const stop = CivicLive.subscribe("incidents", (data, meta) => { ... }, { onReset });
//
// The socket reconnects with backoff and resumes every topic from the last sequence number it
// saw; when the server no longer keeps what was missed it answers "reset" and onReset (or the
// document event "civic:live-reset") tells the page to reload its state. A page opened through a
// citizen link names it in <meta name="civic-link" content="..."> or CivicLive.configure({link}).
(function () {
  "use strict";

  const topics = new Map(); // topic -> { handlers: Set, resets: Set, seq, epoch }
  const options = { link: null, path: "/ws" };
  let socket = null;
  let attempt = 0;
  let timer = null;
  let pinger = null;
  let status = "idle";
  let stopped = false;

  function setStatus(value, detail) {
    status = value;
    document.documentElement.dataset.liveStatus = value;
    document.dispatchEvent(new CustomEvent("civic:live-status", { detail: { status: value, ...detail } }));
  }

  function url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const meta = document.querySelector('meta[name="civic-link"]');
    const link = options.link || (meta && meta.content);
    return scheme + "//" + location.host + options.path + (link ? "?link=" + encodeURIComponent(link) : "");
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function sendSubscribe(topic, state) {
    const message = { type: "subscribe", topic };
    if (state.seq !== null) {
      message.since = state.seq;
      message.epoch = state.epoch;
    }
    send(message);
  }

  function connect() {
    timer = null;
    if (stopped || topics.size === 0) return;
    setStatus("connecting");
    socket = new WebSocket(url());
    socket.onopen = () => {
      attempt = 0;
      setStatus("open");
      topics.forEach((state, topic) => sendSubscribe(topic, state));
      pinger = setInterval(() => send({ type: "ping" }), 25000);
    };
    socket.onmessage = (event) => receive(event.data);
    socket.onclose = (event) => {
      clearInterval(pinger);
      socket = null;
      if (event.code === 4401) {
        // Credentials are gone (signed out, link expired): retrying would not help.
        setStatus("unauthorised", { reason: event.reason });
        return;
      }
      setStatus("closed", { code: event.code });
      schedule();
    };
  }

  function schedule() {
    if (stopped || timer !== null || topics.size === 0) return;
    const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    timer = setTimeout(connect, delay);
  }

  function receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      console.warn("civic-live: unreadable frame", error);
      return;
    }
    const state = message.topic !== undefined ? topics.get(message.topic) : undefined;
    if (message.type === "message" && state) {
      if (state.epoch === message.epoch && state.seq !== null && message.seq <= state.seq) return;
      state.seq = message.seq;
      state.epoch = message.epoch;
      const meta = { topic: message.topic, seq: message.seq };
      state.handlers.forEach((handler) => handler(message.data, meta));
    } else if (message.type === "subscribed" && state) {
      if (state.seq === null || state.epoch !== message.epoch) state.seq = message.seq;
      state.epoch = message.epoch;
    } else if (message.type === "reset" && state) {
      state.seq = message.seq;
      state.epoch = message.epoch;
      state.resets.forEach((handler) => handler(message.topic));
      document.dispatchEvent(new CustomEvent("civic:live-reset", { detail: { topic: message.topic } }));
    } else if (message.type === "error") {
      console.warn("civic-live:", message.topic || "", message.status, message.detail);
    }
  }

  function subscribe(topic, onMessage, extra) {
    let state = topics.get(topic);
    if (!state) {
      state = { handlers: new Set(), resets: new Set(), seq: null, epoch: null };
      topics.set(topic, state);
      if (socket && socket.readyState === WebSocket.OPEN) sendSubscribe(topic, state);
    }
    state.handlers.add(onMessage);
    const onReset = extra && extra.onReset;
    if (onReset) state.resets.add(onReset);
    if (!socket && timer === null) connect();
    return function unsubscribe() {
      state.handlers.delete(onMessage);
      if (onReset) state.resets.delete(onReset);
      if (state.handlers.size === 0 && topics.get(topic) === state) {
        topics.delete(topic);
        send({ type: "unsubscribe", topic });
      }
    };
  }

  function configure(settings) {
    Object.assign(options, settings || {});
  }

  window.addEventListener("pagehide", () => {
    stopped = true;
    if (socket) socket.close(1000);
  });
  window.addEventListener("pageshow", (event) => {
    // Back from the page cache: the socket was closed on the way out; resume every topic.
    if (!event.persisted) return;
    stopped = false;
    attempt = 0;
    connect();
  });

  window.CivicLive = {
    subscribe,
    configure,
    get status() {
      return status;
    },
    lastSeq(topic) {
      const state = topics.get(topic);
      return state ? state.seq : null;
    },
  };
})();
