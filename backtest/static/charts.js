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
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var DAY = 86400;
  /* Axis labels in UTC at the granularity of what is in view: "2021" and "Mar" over months,
     "3 Mar" over days, "14:00" within a day or two. The library's own choice of mark can be
     an hour mark standing for a month boundary ("12:00" under June) or a bare day ("3"). */
  function tickMark(time, type, spanSeconds) {
    var d = new Date(time * 1000), month = MONTHS[d.getUTCMonth()];
    var year = String(d.getUTCFullYear()), day = d.getUTCDate() + " " + month;
    if (spanSeconds > 60 * DAY) return type === 0 || d.getUTCMonth() === 0 && d.getUTCDate() < 8 ? year : month;
    if (type === 0) return year;
    if (type === 1) return month;
    if (type === 2 || spanSeconds > 3 * DAY) return day;
    return ("0" + d.getUTCHours()).slice(-2) + ":" + ("0" + d.getUTCMinutes()).slice(-2);
  }
  /* minBarSpacing far below the default 0.5 px: otherwise the first view of a long run shows
     only its last ~2,000 points and the equity and drawdown axes describe that tail alone.
     One price-scale width for every chart, so their time axes line up under each other; the
     logo would sit on the data, so the page footer carries the attribution instead. */
  var base = {
    layout: { background: { color: "#ffffff" }, textColor: "#1d2733", attributionLogo: false },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#e3e8ee",
                 minBarSpacing: 0.001 },
    rightPriceScale: { borderColor: "#e3e8ee", minimumWidth: 88, entireTextOnly: true },
    autoSize: true
  };
  function chart(id) {
    var made = null, options = Object.assign({}, base);
    options.timeScale = Object.assign({}, base.timeScale, {
      tickMarkFormatter: function (time, type) {
        var range = made && made.timeScale().getVisibleRange();
        return tickMark(time, type, range ? range.to - range.from : 0);
      }
    });
    made = LC.createChart(document.getElementById(id), options);
    return made;
  }
  /* Markers whose labels (L/S, the trade's P/L, W3) show only while at most `maxLabelled` of
     them are in view: over a whole run they would cover the prices. With more than
     MAX_SHOWN in view, one in every few is drawn, so the price line stays readable. */
  var MAX_SHOWN = 120;
  function markers(target, series, all, maxLabelled) {
    var plugin = LC.createSeriesMarkers(series, []), bare = all.map(function (m) {
      var copy = Object.assign({}, m);
      copy.text = "";
      return copy;
    }), shown = null;
    function update() {
      var range = target.timeScale().getVisibleRange(), inView = all.length;
      if (range) {
        inView = all.filter(function (m) { return m.time >= range.from && m.time <= range.to; }).length;
      }
      var every = Math.max(1, Math.ceil(inView / MAX_SHOWN));
      var state = inView <= maxLabelled ? "labels" : "every " + every;
      if (state === shown) return;
      shown = state;
      plugin.setMarkers(inView <= maxLabelled ? all
        : bare.filter(function (m, i) { return i % every === 0; }));
      var element = target.chartElement().parentNode;
      element.dataset.labels = String(inView <= maxLabelled);
      element.dataset.markerEvery = String(every);
    }
    target.timeScale().subscribeVisibleTimeRangeChange(update);
    update();
    return plugin;
  }
  function equityLine(target, points) {
    var series = target.addSeries(LC.LineSeries, { color: "#2962ff", lineWidth: 2 });
    series.setData(points);
    return series;
  }
  function drawdownArea(target, points) {
    var series = target.addSeries(LC.AreaSeries, {
      lineColor: "#d2453d", topColor: "rgba(210,69,61,0.05)", bottomColor: "rgba(210,69,61,0.35)",
      invertFilledArea: true, lineWidth: 1,
      // a drawdown is never above its peak: no positive values on the axis
      autoscaleInfoProvider: function (original) {
        var info = original();
        if (info && info.priceRange) info.priceRange.maxValue = 0;
        return info;
      }
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
           markers: markers, equityLine: equityLine, drawdownArea: drawdownArea,
           linkAndFit: linkAndFit };
})();
