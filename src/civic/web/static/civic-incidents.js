// Incident pages: the live board (list + map), an incident's detail, a citizen's status page.
// Every change arrives over CivicLive; text is always set with textContent, never as HTML.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("incident-data").textContent);
  const labels = data.labels;
  const kst = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function when(iso) {
    return kst.format(new Date(iso));
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    children.forEach((child) => node.append(child));
    return node;
  }

  function csrfHeaders(extra) {
    const token = document.querySelector('meta[name="csrf-token"]');
    return { "Content-Type": "application/json", "X-CSRF-Token": token ? token.content : "", ...extra };
  }

  async function send(method, url, body, extra) {
    const response = await fetch(url, { method, headers: csrfHeaders(extra), body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.detail || response.statusText);
    return answer;
  }

  function showError(form, error) {
    const box = form.parentElement.querySelector(".form-error") || form.querySelector(".form-error");
    if (!box) return;
    box.textContent = error ? error.message : "";
    box.hidden = !error;
  }

  function watchStatus() {
    const text = document.querySelector("[data-live-text]");
    if (!text) return;
    document.addEventListener("civic:live-status", (event) => {
      const open = event.detail.status === "open";
      text.textContent = open ? text.dataset.open : text.dataset.closed;
      text.closest(".live-indicator").classList.toggle("is-open", open);
    });
  }

  // -- the board --------------------------------------------------------------------------

  function board(rows) {
    const markers = new Map();
    const known = new Map(data.incidents.map((incident) => [incident.id, incident]));
    const mapElement = document.getElementById("incident-map");
    let map = null;

    function placeMarker(incident) {
      if (!map) return;
      const old = markers.get(incident.id);
      if (old) old.remove();
      markers.delete(incident.id);
      if (incident.latitude === null || incident.latitude === undefined || incident.status === "closed") return;
      const marker = L.circleMarker([incident.latitude, incident.longitude], {
        radius: 9, color: "#8a1c1c", fillColor: "#d64545", fillOpacity: 0.85, weight: 2,
      }).bindTooltip(incident.number + " " + (labels.type[incident.type] || ""));
      marker.on("click", () => { location.href = "/incidents/" + incident.id; });
      marker.addTo(map);
      marker.getElement && marker.getElement() && marker.getElement().setAttribute("data-incident-id", incident.id);
      markers.set(incident.id, marker);
    }

    function onMap(found) {
      map = found;
      known.forEach(placeMarker);
    }
    if (mapElement && mapElement.civicMap) onMap(mapElement.civicMap);
    else if (mapElement) mapElement.addEventListener("civic:map-ready", (event) => onMap(event.detail.map));

    function row(incident) {
      const type = (labels.type[incident.type] || incident.type) + (incident.subtype ? " · " + incident.subtype : "");
      const received = incident.created_at || incident.occurred_at;
      return el("tr", { "data-incident-id": incident.id, "data-status": incident.status },
        el("td", {}, el("a", { href: "/incidents/" + incident.id }, incident.number)),
        el("td", {}, type),
        el("td", {}, el("span", { class: "badge status-" + incident.status }, labels.status[incident.status] || incident.status)),
        el("td", {}, incident.address || ""),
        el("td", {}, el("time", { datetime: received }, when(received))));
    }

    function counted() {
      const count = rows.children.length;
      document.getElementById("incident-count").textContent = String(count);
      document.getElementById("incident-empty").hidden = count > 0;
    }

    function upsert(incident) {
      const before = known.get(incident.id);
      if (before && !incident.created_at) incident.created_at = before.created_at;
      const existing = rows.querySelector(`tr[data-incident-id="${CSS.escape(incident.id)}"]`);
      if (incident.status === "closed") {
        if (existing) existing.remove();
        known.delete(incident.id);
      } else {
        known.set(incident.id, incident);
        const fresh = row(incident);
        if (existing) existing.replaceWith(fresh);
        else rows.prepend(fresh);
      }
      placeMarker(incident);
      counted();
    }

    async function reload() {
      // The server no longer keeps what we missed: read the open incidents again.
      const response = await fetch("/api/incidents?open=true&limit=200", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const page = await response.json();
      rows.replaceChildren();
      known.forEach((incident) => { incident.status = "closed"; placeMarker(incident); });
      known.clear();
      page.items.reverse().forEach(upsert);
    }

    CivicLive.subscribe("incidents", (message) => upsert(message.incident), { onReset: reload });

    const form = document.getElementById("incident-form");
    if (form) {
      let key = crypto.randomUUID();
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const fields = Object.fromEntries(new FormData(form).entries());
        const body = {};
        Object.entries(fields).forEach(([name, value]) => {
          if (value !== "" && name !== "latitude" && name !== "longitude") body[name] = value;
        });
        if (fields.latitude !== "" || fields.longitude !== "") {
          const number = (value) => (value === "" ? null : Number(value)); // a half place is refused
          body.location = { latitude: number(fields.latitude), longitude: number(fields.longitude) };
        }
        try {
          const incident = await send("POST", "/api/incidents", body, { "Idempotency-Key": key });
          upsert(incident);
          form.reset();
          key = crypto.randomUUID();
          showError(form, null);
        } catch (error) {
          showError(form, error);
        }
      });
    }
  }

  // -- one incident -----------------------------------------------------------------------

  function timelineItem(entry, withActor) {
    const item = el("li", {}, el("time", { datetime: entry.at }, when(entry.at)), " ",
      el("strong", {}, labels.status[entry.status] || entry.status));
    if (withActor) item.append(" ", el("span", { class: "muted" }, entry.actor + (entry.note ? " · " + entry.note : "")));
    return item;
  }

  function detail(root) {
    const id = root.dataset.incidentId;

    function render(incident) {
      const status = document.getElementById("incident-status");
      status.textContent = labels.status[incident.status];
      status.className = "badge status-" + incident.status;
      document.getElementById("incident-timeline").replaceChildren(...incident.timeline.map((e) => timelineItem(e, true)));
      document.getElementById("incident-units").replaceChildren(...incident.units.map((unit) =>
        el("li", {}, unit.name + " ", el("span", { class: "badge" }, labels.unit[unit.status] || unit.status))));
      document.getElementById("incident-notes").replaceChildren(...incident.notes.map((note) =>
        el("li", {}, el("span", { class: "muted" }, when(note.created_at) + " · " + note.author), el("br"),
          el("span", { class: "pre" }, note.text))));
      const select = document.querySelector("#status-form select");
      if (select) {
        const order = Object.keys(labels.status);
        const now = order.indexOf(incident.status);
        select.replaceChildren(...order.slice(now + 1).map((s) => el("option", { value: s }, labels.status[s])));
        document.getElementById("status-form").hidden = now === order.length - 1;
      }
    }

    async function refresh() {
      const response = await fetch("/api/incidents/" + encodeURIComponent(id), { headers: { Accept: "application/json" } });
      if (response.ok) render(await response.json());
    }

    CivicLive.subscribe("incident:" + id, refresh, { onReset: refresh });

    const reporter = document.getElementById("reporter-button");
    if (reporter) {
      reporter.addEventListener("click", async () => {
        const response = await fetch("/api/incidents/" + encodeURIComponent(id) + "/reporter", { headers: { Accept: "application/json" } });
        const answer = await response.json();
        document.getElementById("reporter-contact").textContent = response.ok
          ? [answer.name, answer.phone].filter(Boolean).join(" · ") : answer.detail;
        reporter.hidden = response.ok;
      });
    }
    const statusForm = document.getElementById("status-form");
    if (statusForm) {
      statusForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const fields = Object.fromEntries(new FormData(statusForm).entries());
        try {
          render(await send("POST", `/api/incidents/${encodeURIComponent(id)}/status`, { status: fields.status, note: fields.note || null }));
          statusForm.reset();
          showError(statusForm, null);
        } catch (error) { showError(statusForm, error); }
      });
    }
    const noteForm = document.getElementById("note-form");
    noteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await send("POST", `/api/incidents/${encodeURIComponent(id)}/notes`, { text: new FormData(noteForm).get("text") });
        noteForm.reset();
        showError(noteForm, null);
        refresh();
      } catch (error) { showError(noteForm, error); }
    });
  }

  // -- a citizen's status page ------------------------------------------------------------

  function citizen(root) {
    const id = root.dataset.incidentId;
    const status = document.getElementById("incident-status");
    CivicLive.subscribe("incident:" + id, (message) => {
      if (status.className === "badge status-" + message.status) return;
      status.textContent = labels.status[message.status];
      status.className = "badge status-" + message.status;
      document.getElementById("incident-timeline").append(timelineItem({ at: message.at, status: message.status }, false));
    });
  }

  watchStatus();
  const rows = document.getElementById("incident-rows");
  const one = document.getElementById("incident-detail");
  const mine = document.getElementById("citizen-status");
  if (rows) board(rows);
  else if (one) detail(one);
  else if (mine) citizen(mine);
})();
