// Civic map component: every .civic-map becomes a Leaflet map that needs no outside network.
// With a tile server set it shows tiles; else it draws administrative boundaries from
// CIVIC_DATA_DIR/geo; failing that, a latitude/longitude graticule so the map still orients.
(function () {
  "use strict";

  function graticule(map) {
    const lines = L.layerGroup();
    const style = { color: "#7b8794", weight: 1, opacity: 0.6, interactive: false };
    for (let lat = 33; lat <= 39; lat += 1) lines.addLayer(L.polyline([[lat, 124], [lat, 132]], style));
    for (let lng = 124; lng <= 132; lng += 1) lines.addLayer(L.polyline([[33, lng], [39, lng]], style));
    lines.addTo(map);
    map.getContainer().dataset.layer = "graticule";
  }

  async function boundaries(map, url) {
    const response = await fetch(url, { headers: { Accept: "application/geo+json" } });
    if (!response.ok) throw new Error("no boundaries: " + response.status);
    const shapes = await response.json();
    const layer = L.geoJSON(shapes, {
      style: { color: "#0b4f8a", weight: 1.2, fillColor: "#ffffff", fillOpacity: 0.85 },
      onEachFeature: (feature, shape) => {
        const name = feature.properties && (feature.properties.name || feature.properties.name_eng);
        if (name) shape.bindTooltip(name, { sticky: true });
      },
    }).addTo(map);
    map.getContainer().dataset.layer = "boundaries";
    if (!map.getContainer().dataset.keepView) map.fitBounds(layer.getBounds(), { padding: [8, 8], animate: false });
    return layer;
  }

  async function initialise(element) {
    if (element.dataset.ready) return;
    element.dataset.ready = "1";
    const [lat, lng] = element.dataset.center.split(",").map(Number);
    const map = L.map(element, { zoomControl: true, attributionControl: true, zoomSnap: 0.25 })
      .setView([lat, lng], Number(element.dataset.zoom || 7));
    element.civicMap = map;
    if (element.dataset.tileUrl) {
      L.tileLayer(element.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
      element.dataset.layer = "tiles";
    } else if (element.dataset.boundaries) {
      try {
        await boundaries(map, element.dataset.boundaries);
        map.attributionControl.addAttribution("경계: 통계청 (KOGL)");
      } catch (error) {
        graticule(map);
      }
    } else {
      graticule(map);
    }
    element.dispatchEvent(new CustomEvent("civic:map-ready", { detail: { map }, bubbles: true }));
  }

  function start() {
    if (typeof L === "undefined") {
      document.querySelectorAll(".civic-map").forEach((el) => {
        el.textContent = "지도 라이브러리가 설치되지 않았습니다 (make setup).";
      });
      return;
    }
    document.querySelectorAll(".civic-map").forEach(initialise);
  }

  window.CivicMap = { initialise };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
