// The overview's processed/failed graph: asks series.json every few seconds and redraws.
(function () {
  const box = document.getElementById("throughput");
  if (!box || !window.uPlot) return;
  const url = box.dataset.url;
  const refresh = Number(box.dataset.refresh || 3) * 1000;
  let plot = null;
  function options(width) {
    return {
      width: width, height: 240,
      series: [
        {},
        { label: "processed/s", stroke: "#2563eb", fill: "rgba(37,99,235,.08)", width: 2 },
        { label: "failed/s", stroke: "#dc2626", fill: "rgba(220,38,38,.08)", width: 2 },
      ],
      axes: [{}, { label: "per second" }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    };
  }
  async function draw() {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      const rows = [data.at, data.processed, data.failed];
      document.getElementById("processed-total").textContent = data.totals.processed.toLocaleString();
      document.getElementById("failed-total").textContent = data.totals.failed.toLocaleString();
      box.dataset.processed = data.totals.processed;
      box.dataset.failed = data.totals.failed;
      if (plot) plot.setData(rows);
      else plot = new uPlot(options(box.clientWidth || 900), rows, box);
    } catch (e) {
      // The next tick tries again; a web restart must not break the page.
    }
  }
  draw();
  setInterval(draw, refresh);
  window.addEventListener("resize", () => plot && plot.setSize({ width: box.clientWidth, height: 240 }));
})();
