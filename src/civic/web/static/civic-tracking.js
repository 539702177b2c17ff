// Civic live positions: markers on a .civic-map inside .tracking-live[data-kinds][data-topics],
// loaded from /api/tracking/subjects and moved by the realtime hub (civic-live.js) as positions
// arrive ({"type": "positions", "items": [...]}, or "signal_lost" / "signal_restored"). Each marker's element carries data-subject, data-lat and data-lon for tests and tools.
(function () {
  "use strict";

  const KIND_COLOURS = {
    fire_unit: "#c62828", ambulance: "#ef6c00", vehicle: "#37474f", drone: "#6a1b9a",
    collaborator: "#2e7d32", watch: "#00838f", ankle_device: "#4e342e",
  };
  const TIME = new Intl.DateTimeFormat("ko-KR", {
    timeZone: "Asia/Seoul", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function icon(kind) {
    return L.divIcon({
      className: "tracking-marker tracking-" + kind,
      html: '<span style="background:' + (KIND_COLOURS[kind] || "#0b4f8a") + '"></span>',
      iconSize: [16, 16],
      iconAnchor: [8, 8],
    });
  }

  function Layer(root, map) {
    this.root = root;
    this.map = map;
    this.group = L.layerGroup().addTo(map);
    this.subjects = new Map(); // "kind/id" -> { marker, row, time, lost }
    this.rows = root.querySelector("[data-tracking-rows]");
    this.status = root.querySelector("[data-tracking-status]");
    this.kinds = (root.dataset.kinds || "").split(",").filter(Boolean);
    this.labels = JSON.parse(root.dataset.kindLabels || "{}");
    this.text = {
      live: root.dataset.textLive || "수신 중",
      lost: root.dataset.textLost || "신호 끊김",
      count: root.dataset.textCount || "대상 {count}개 · 실시간 갱신",
      failed: root.dataset.textFailed || "위치를 불러오지 못했습니다.",
    };
    this.fitted = false;
  }

  Layer.prototype.show = function (data, lost) {
    if (data.lat === null || data.lat === undefined || data.lon === null || data.lon === undefined) return;
    const key = data.kind + "/" + data.subject_id;
    let entry = this.subjects.get(key);
    if (entry && entry.time && data.time && data.time < entry.time) return; // an older report
    if (!entry) {
      const marker = L.marker([data.lat, data.lon], { icon: icon(data.kind), keyboard: false, title: data.name });
      marker.bindTooltip(data.name || data.subject_id);
      marker.addTo(this.group);
      const row = document.createElement("tr");
      row.dataset.subject = key;
      row.innerHTML = "<td></td><td></td><td></td><td></td>";
      this.rows.appendChild(row);
      entry = { marker, row, time: null, lost: false };
      this.subjects.set(key, entry);
    } else {
      entry.marker.setLatLng([data.lat, data.lon]);
    }
    entry.time = data.time || entry.time;
    entry.lost = Boolean(lost);
    this.paint(key, entry, data);
  };

  Layer.prototype.paint = function (key, entry, data) {
    const element = entry.marker.getElement();
    if (element) {
      element.dataset.subject = key;
      element.dataset.lat = String(data.lat);
      element.dataset.lon = String(data.lon);
      element.classList.toggle("lost", entry.lost);
    }
    const cells = entry.row.children;
    cells[0].textContent = data.name || data.subject_id;
    cells[1].textContent = this.labels[data.kind] || data.kind;
    cells[2].textContent = entry.time ? TIME.format(new Date(entry.time)) : "";
    cells[3].textContent = entry.lost ? this.text.lost : this.text.live;
    entry.row.dataset.lat = String(data.lat);
    entry.row.dataset.lon = String(data.lon);
    entry.row.classList.toggle("lost", entry.lost);
  };

  Layer.prototype.receive = function (data) {
    if (data.type === "signal_lost" || data.type === "signal_restored") {
      const entry = this.subjects.get(data.kind + "/" + data.subject_id);
      if (!entry) return;
      entry.lost = data.type === "signal_lost";
      const at = entry.marker.getLatLng();
      this.paint(data.kind + "/" + data.subject_id, entry, {
        kind: data.kind, subject_id: data.subject_id, name: data.name, lat: at.lat, lon: at.lng,
      });
      return;
    }
    if (data.type === "positions") for (const item of data.items) this.show(item, false);
  };

  Layer.prototype.load = async function () {
    const query = this.kinds.map((kind) => "kind=" + encodeURIComponent(kind)).join("&");
    const response = await fetch("/api/tracking/subjects?" + query, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error("subjects: " + response.status);
    const subjects = await response.json();
    for (const subject of subjects) {
      if (!subject.last) continue;
      this.show({
        kind: subject.kind, subject_id: subject.subject_id, name: subject.display_name,
        lat: subject.last.lat, lon: subject.last.lon, time: subject.last.time,
      }, subject.signal_lost);
    }
    const points = subjects.filter((s) => s.last).map((s) => [s.last.lat, s.last.lon]);
    if (points.length && !this.fitted) {
      this.fitted = true;
      this.map.getContainer().dataset.keepView = "1"; // boundaries loading later keep this view
      this.map.fitBounds(points, { padding: [40, 40], maxZoom: 13, animate: false });
    }
    this.status.textContent = this.text.count.replace("{count}", String(this.subjects.size));
    this.root.dataset.trackingReady = "1";
  };

  function start(root, map) {
    if (root.trackingLayer) return;
    const layer = new Layer(root, map);
    root.trackingLayer = layer;
    const reload = () => layer.load().catch((error) => {
      layer.status.textContent = layer.text.failed;
      console.warn("civic-tracking:", error);
    });
    // Subscribe before loading, so nothing that moves in between is missed.
    for (const topic of (root.dataset.topics || "").split(",").filter(Boolean)) {
      window.CivicLive.subscribe(topic, (data) => layer.receive(data), { onReset: reload });
    }
    reload();
  }

  function initialise() {
    document.querySelectorAll(".tracking-live").forEach((root) => {
      const element = root.querySelector(".civic-map");
      if (!element || typeof window.CivicLive === "undefined") return;
      if (element.civicMap) start(root, element.civicMap);
      else element.addEventListener("civic:map-ready", (event) => start(root, event.detail.map), { once: true });
    });
  }

  window.CivicTracking = { initialise };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initialise);
  else initialise();
})();
