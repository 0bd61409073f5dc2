// Progressive enhancement: drag-and-drop upload with client-side checks, and charts.
(function () {
  "use strict";

  function setupUpload(form) {
    var input = form.querySelector("input[type=file]");
    var zone = form.querySelector(".dropzone");
    var err = form.querySelector(".upload-error");
    var label = form.querySelector(".dz-file");
    var maxBytes = parseInt(form.dataset.maxBytes, 10);
    var accept = form.dataset.accept.split(",");
    function check() {
      var file = input.files && input.files[0];
      var problem = "";
      if (file) {
        var name = file.name.toLowerCase();
        if (!accept.some(function (ext) { return name.endsWith(ext); })) {
          problem = "Only " + accept.join(" or ") + " files are accepted.";
        } else if (file.size > maxBytes) {
          problem = "The file is larger than " + Math.floor(maxBytes / 1048576) + " MB.";
        } else if (file.size === 0) {
          problem = "The file is empty.";
        }
        label.textContent = file.name + " (" + (file.size / 1024).toFixed(1) + " KiB)";
      }
      err.textContent = problem;
      err.hidden = !problem;
      return !problem;
    }
    input.addEventListener("change", check);
    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; check(); }
    });
    form.addEventListener("submit", function (e) {
      if (!check()) { e.preventDefault(); return; }
      form.querySelector("button[type=submit]").disabled = true;
    });
  }

  function barChart(canvas, labels, values, percent) {
    if (!window.Chart) { return; }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ data: values, backgroundColor: "#6172f3" }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: percent ? { min: 0, max: 1, ticks: { callback: function (v) { return Math.round(v * 100) + " %"; } } } : { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  function setupCharts() {
    document.querySelectorAll("canvas[data-chart=bar]").forEach(function (c) {
      barChart(c, JSON.parse(c.dataset.labels), JSON.parse(c.dataset.values), !!c.dataset.percent);
    });
    var data = document.getElementById("dashboard-data");
    if (data) {
      var parsed = JSON.parse(data.textContent);
      document.querySelectorAll("canvas[data-from]").forEach(function (c) {
        var d = parsed[c.dataset.from];
        if (d) { barChart(c, d.labels, d.values, false); }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.upload").forEach(setupUpload);
    setupCharts();
  });
})();
