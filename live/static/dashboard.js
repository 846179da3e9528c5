// The dashboard page: polls the JSON API and redraws. Every value from the database is put
// into the page with textContent, never as HTML, so a symbol or comment cannot inject markup.
(function () {
  "use strict";
  var REFRESH_MS = 3000;
  var token = new URLSearchParams(window.location.search).get("token");
  var headers = token ? { Authorization: "Bearer " + token } : {};

  function getJson(path) {
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (response) {
      if (!response.ok) throw new Error(path + ": HTTP " + response.status);
      return response.json();
    });
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function money(value) {
    return value === null || value === undefined ? "–" :
      Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function shortTime(iso) {
    return iso ? String(iso).replace("T", " ").slice(0, 19) : "";
  }

  // columns: [header, key, kind] with kind num | money | time | text
  function fillTable(id, columns, rows, empty) {
    var table = document.getElementById(id);
    table.replaceChildren();
    var head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", c[0])); });
    table.appendChild(head);
    if (!rows.length) {
      var row = el("tr"), cell = el("td", empty, "note");
      cell.colSpan = columns.length;
      row.appendChild(cell);
      table.appendChild(row);
      return;
    }
    rows.forEach(function (r) {
      var tr = el("tr");
      columns.forEach(function (c) {
        var value = r[c[1]], kind = c[2], td;
        if (kind === "money") {
          td = el("td", money(value), "num " + (value > 0 ? "pos" : value < 0 ? "neg" : ""));
        } else if (kind === "num") {
          td = el("td", value === null || value === undefined ? "" : value, "num");
        } else if (kind === "time") {
          td = el("td", shortTime(value));
        } else {
          td = el("td", value === null || value === undefined ? "" : value);
        }
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
  }

  function card(label, value) {
    var box = el("div", null, "card");
    box.appendChild(el("div", label, "label"));
    box.appendChild(el("div", value, "value"));
    return box;
  }

  function showStatus(s, summary) {
    var pill = document.getElementById("state");
    pill.dataset.state = s.state;
    pill.textContent = s.state + (s.heartbeat_age_s !== undefined && s.heartbeat_age_s !== null
      ? " (" + Math.round(s.heartbeat_age_s) + " s ago)" : "");
    document.getElementById("headline").textContent = s.strategy
      ? [s.mode, s.strategy, (s.symbols || []).join(","), s.timeframe, "via " + s.backend,
         s.connected ? "connected" : "DISCONNECTED"].join(" · ")
      : (s.message || "");
    var account = s.account || {}, limits = s.limits || {};
    var cards = document.getElementById("cards");
    cards.replaceChildren(
      card("Balance", money(account.balance)),
      card("Equity", money(account.equity)),
      card("Margin / free", money(account.margin) + " / " + money(account.margin_free)),
      card("Trades · win rate", (summary.count || 0) + " · " +
        (summary.win_rate_pct === null || summary.win_rate_pct === undefined ? "–"
          : summary.win_rate_pct.toFixed(1) + "%")),
      card("Net P/L", money(summary.net_pnl)),
      card("Profit factor", summary.profit_factor ? summary.profit_factor.toFixed(2) : "–"),
      card("Max drawdown", money(summary.max_drawdown)),
      card("Entries today", limits.entries_today === undefined ? "–"
        : limits.entries_today + " / " + (limits.max_trades_per_day || "∞")),
      card("Daily loss", limits.daily_loss_pct === undefined ? "–"
        : limits.daily_loss_pct.toFixed(2) + "% / " + limits.max_daily_loss_pct + "%"));
    showBanners(s);
  }

  function showBanners(s) {
    var banners = document.getElementById("banners");
    banners.replaceChildren();
    if (s.kill_switch) {
      banners.appendChild(el("div", "KILL SWITCH: " + s.kill_switch + " (remove " +
        (s.kill_switch_file || "the kill-switch file") + " to resume)", "banner critical"));
    }
    (s.disabled_reasons || []).forEach(function (reason) {
      banners.appendChild(el("div", "New entries stopped: " + reason, "banner warning"));
    });
    if (s.state === "stale" || s.state === "stopped") {
      banners.appendChild(el("div", "The trader is " + s.state + ": last heartbeat " +
        shortTime(s.heartbeat_ts), "banner warning"));
    }
  }

  var charts = null;
  function showEquity(points) {
    var LC = window.LightweightCharts;
    document.getElementById("equity-note").textContent = points.length
      ? points.length + " account snapshots" : "no account snapshots yet";
    if (!LC || !points.length) return;
    if (!charts) {
      var base = { autoSize: true, layout: { attributionLogo: true },
        timeScale: { timeVisible: true, secondsVisible: false } };
      var top = LC.createChart(document.getElementById("equity-chart"), base);
      var bottom = LC.createChart(document.getElementById("drawdown-chart"), base);
      charts = {
        equity: top.addSeries(LC.LineSeries, { color: "#2962ff", lineWidth: 2 }),
        balance: top.addSeries(LC.LineSeries, { color: "#9aa5b1", lineWidth: 1 }),
        drawdown: bottom.addSeries(LC.AreaSeries, { lineColor: "#d2453d",
          topColor: "rgba(210,69,61,0.05)", bottomColor: "rgba(210,69,61,0.35)",
          invertFilledArea: true, lineWidth: 1 })
      };
    }
    var seen = {}, equity = [], balance = [], drawdown = [];
    points.forEach(function (p) {
      var t = Math.floor(Date.parse(p.ts) / 1000);
      if (seen[t]) return;  // the chart needs strictly increasing times
      seen[t] = true;
      equity.push({ time: t, value: p.equity });
      balance.push({ time: t, value: p.balance });
      drawdown.push({ time: t, value: p.drawdown });
    });
    charts.equity.setData(equity);
    charts.balance.setData(balance);
    charts.drawdown.setData(drawdown);
  }

  function refresh() {
    Promise.all([
      getJson("/api/status"), getJson("/api/summary"), getJson("/api/equity?limit=2000"),
      getJson("/api/orders?limit=25"), getJson("/api/signals?limit=25"),
      getJson("/api/events?limit=25&exclude_kind=heartbeat")
    ]).then(function (r) {
      var status = r[0];
      showStatus(status, r[1]);
      showEquity(r[2].points);
      document.getElementById("positions-note").textContent =
        status.heartbeat_ts ? "as of " + shortTime(status.heartbeat_ts) : "";
      fillTable("positions", [["Ticket", "ticket", "num"], ["Symbol", "symbol"], ["Side", "side"],
        ["Lots", "volume", "num"], ["Open", "price_open", "num"], ["Now", "price_current", "num"],
        ["SL", "sl", "num"], ["TP", "tp", "num"], ["P/L", "profit", "money"],
        ["Comment", "comment"]], status.positions || [], "no open positions");
      fillTable("orders", [["Time", "ts", "time"], ["Symbol", "symbol"], ["Kind", "kind"],
        ["Side", "side"], ["Lots", "volume", "num"], ["Status", "status"],
        ["Retcode", "retcode", "num"], ["Fill", "fill_price", "num"], ["Id", "client_order_id"],
        ["Detail", "detail"]], r[3].rows, "no orders yet");
      fillTable("signals", [["Time", "ts", "time"], ["Bar", "bar_time", "time"],
        ["Symbol", "symbol"], ["Target", "position", "num"], ["Action", "action"],
        ["Outcome", "outcome"]], r[4].rows, "no signals yet");
      fillTable("events", [["Time", "ts", "time"], ["Level", "level"], ["Kind", "kind"],
        ["Symbol", "symbol"], ["Message", "message"]], r[5].rows, "no events yet");
      document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    }).catch(function (error) {
      document.getElementById("updated").textContent = "Update failed: " + error.message;
    });
  }

  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
