/* Helpers shared by the backtest and walk-forward reports (inlined into each page). */
var BT = (function () {
  "use strict";
  var LC = window.LightweightCharts;

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function fmt(value, digits) {
    if (value === null || value === undefined) return "-";
    if (typeof value !== "number") return String(value);
    if (digits === undefined) {
      if (Number.isInteger(value)) return value.toLocaleString("en-US");
      digits = Math.abs(value) < 1 ? 4 : 2;
    }
    return value.toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
  }
  /* rows: [[label, value, value...]]; every value formatted by fmt */
  function fillTable(tbody, rows) {
    rows.forEach(function (item) {
      var row = document.createElement("tr");
      cell(row, item[0]);
      item.slice(1).forEach(function (value) { cell(row, fmt(value)); });
      tbody.appendChild(row);
    });
  }
  function headRow(thead, names) {
    var row = document.createElement("tr");
    names.forEach(function (name) {
      var th = document.createElement("th");
      th.textContent = name;
      row.appendChild(th);
    });
    thead.appendChild(row);
  }
  /* minBarSpacing far below the default 0.5 px: otherwise the first view of a long run shows
     only its last ~2,000 points and the equity and drawdown axes describe that tail alone */
  var base = {
    layout: { background: { color: "#ffffff" }, textColor: "#1d2733", attributionLogo: true },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#e3e8ee",
                 minBarSpacing: 0.001 },
    rightPriceScale: { borderColor: "#e3e8ee" },
    autoSize: true
  };
  function chart(id) { return LC.createChart(document.getElementById(id), base); }
  function equityLine(target, points) {
    var series = target.addSeries(LC.LineSeries, { color: "#2962ff", lineWidth: 2 });
    series.setData(points);
    return series;
  }
  function drawdownArea(target, points) {
    var series = target.addSeries(LC.AreaSeries, {
      lineColor: "#d2453d", topColor: "rgba(210,69,61,0.05)", bottomColor: "rgba(210,69,61,0.35)",
      invertFilledArea: true, lineWidth: 1
    });
    series.setData(points);
    return series;
  }
  /* one time axis for all charts: scrolling or zooming one moves the others; all open on
     the whole run */
  function linkAndFit(charts) {
    var syncing = false;
    charts.forEach(function (source) {
      source.timeScale().subscribeVisibleTimeRangeChange(function (range) {
        if (syncing || !range) return;
        syncing = true;
        charts.forEach(function (other) {
          if (other !== source) { try { other.timeScale().setVisibleRange(range); } catch (e) {} }
        });
        syncing = false;
      });
    });
    syncing = true;  // each chart fits its own data; no chart narrows another meanwhile
    charts.forEach(function (c) { c.timeScale().fitContent(); });
    syncing = false;
  }
  return { LC: LC, cell: cell, fmt: fmt, fillTable: fillTable, headRow: headRow, chart: chart,
           equityLine: equityLine, drawdownArea: drawdownArea, linkAndFit: linkAndFit };
})();
