// The dashboard page: polls the JSON API and redraws. Every value from the database is put
// into the page with textContent, never as HTML, so a symbol or comment cannot inject markup.
(function () {
  "use strict";
  var REFRESH_MS = 3000;
  var query = new URLSearchParams(window.location.search);
  var token = query.get("token");
  var headers = token ? { Authorization: "Bearer " + token } : {};
  var trader = query.get("trader") || "";  // the trader shown; "" is the server's default

  // every call reads the trader chosen in the selector (the server checks the name)
  function withTrader(path) {
    if (!trader) return path;
    return path + (path.indexOf("?") < 0 ? "?" : "&") + "trader=" + encodeURIComponent(trader);
  }

  function getJson(path) {
    return fetch(withTrader(path), { headers: headers, cache: "no-store" }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new Error(path + ": HTTP " + response.status + (body.error ? " " + body.error : ""));
        });
      }
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

  var PHONE = window.matchMedia("(max-width: 600px)");

  // "2024-03-20 02:00 UTC": the year always (a bare "03-04" reads as 3 April in much of the
  // world), 24-hour, and the clock named (the rows are recorded in UTC); `seconds` adds them
  function stamp(iso, seconds) {
    if (!iso) return "";
    var text = String(iso), zoned = /(Z|[+-]\d\d:?\d\d)$/.test(text);
    var ms = Date.parse(zoned ? text : text.replace(" ", "T") + "Z");
    if (isNaN(ms)) return text;
    return new Date(ms).toISOString().replace("T", " ").slice(0, seconds ? 19 : 16) + " UTC";
  }

  // a chart time (seconds, UTC) the same way, for the crosshair's label
  function chartStamp(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  // columns: [header, key, kind, wide] with kind num | money | price | time | text; a wide
  // column is left out on a phone, so the ones that matter fit beside each other
  function fillTable(id, columns, rows, empty) {
    var table = document.getElementById(id);
    table.replaceChildren();
    var head = el("tr");
    columns.forEach(function (c) {
      head.appendChild(el("th", c[0], cellClass(c)));
    });
    table.appendChild(head);
    if (!rows.length) {
      var row = el("tr"), cell = el("td", empty, "note");
      cell.colSpan = columns.length;
      row.appendChild(cell);
      table.appendChild(row);
    }
    rows.forEach(function (r) { table.appendChild(tableRow(columns, r)); });
    showScrollHint(table);
  }

  function cellClass(c) {
    var numeric = ["num", "money", "amount", "price", "pct"].indexOf(c[2]) >= 0;
    return (numeric ? "num" : "") + (c[3] === "wide" ? " wide" : "");
  }

  // on a phone the date above the time, so the column stays as narrow as a bare time
  function timeCell(iso, cls) {
    var td = el("td", null, cls), text = stamp(iso), cut = text.indexOf(" ");
    if (PHONE.matches && cut > 0) td.append(text.slice(0, cut), el("br"), text.slice(cut + 1));
    else td.textContent = text;
    return td;
  }

  function tableRow(columns, r) {
    var tr = el("tr", null, r.total ? "total" : "");
    columns.forEach(function (c) {
      var value = r[c[1]], kind = c[2], blank = value === null || value === undefined;
      var cls = cellClass(c);
      if (kind === "money") {
        tr.appendChild(el("td", money(value), cls + (value > 0 ? " pos" : value < 0 ? " neg" : "")));
      } else if (kind === "price") {  // MT5 writes 0 for a stop-loss or take-profit not set
        tr.appendChild(el("td", blank || value === 0 ? "–" : value, cls));
      } else if (kind === "num") {
        tr.appendChild(el("td", blank ? "" : value, cls));
      } else if (kind === "pct") {
        tr.appendChild(el("td", blank ? "–" : Number(value).toFixed(1) + "%", cls));
      } else if (kind === "amount") {  // money that is no gain or loss: no colour
        tr.appendChild(el("td", money(value), cls));
      } else if (kind === "time") {
        tr.appendChild(timeCell(value, cls));
      } else {
        tr.appendChild(el("td", blank ? "" : value, cls));
      }
    });
    return tr;
  }

  // On a narrow screen the right-hand columns are off-screen: say so above the table.
  function showScrollHint(table) {
    var box = table.parentNode, hint = box.previousElementSibling;
    if (!hint || !hint.classList.contains("more-hint")) {
      hint = el("p", "", "more-hint");
      box.parentNode.insertBefore(hint, box);
    }
    var hidden = box.scrollWidth - box.clientWidth > 2;
    hint.textContent = hidden ? "Swipe or scroll the table sideways for more columns →" : "";
    hint.classList.toggle("shown", hidden);
  }

  function card(label, value, sub, cls) {
    var box = el("div", null, "card" + (cls ? " " + cls : ""));
    box.appendChild(el("div", label, "label"));
    box.appendChild(el("div", value, "value"));
    if (sub) box.appendChild(el("div", sub, "sub"));
    return box;
  }

  function headline(s) {
    if (!s.strategy) return s.message || "";
    var parts = [s.mode, s.strategy, (s.symbols || []).join(","), s.timeframe, "via " + s.backend];
    // the connection is only known while the trader runs; a stopped one is connected to nothing
    if (s.state === "running") parts.push(s.connected ? "connected" : "DISCONNECTED");
    return parts.join(" · ");
  }

  function entriesCard(s) {
    if (s.state === "no data") return card("New entries", "–");
    var blocked = s.kill_switch ? "kill switch " + s.kill_switch
      : (s.entries_enabled === false ? (s.disabled_reasons || [])[0] || "stopped" : "");
    if (blocked) return card("New entries", "blocked", blocked, "blocked");
    // a trader that is not running opens nothing, whatever its last heartbeat allowed
    if (s.state !== "running") return card("New entries", "none", "the trader is " + s.state, "blocked");
    return card("New entries", "allowed");
  }

  // the next news blackout (CALENDAR_FILE), with the broker's clock it is read against
  function blackoutCard(market) {
    var next = (market.next_blackouts || []).slice().sort(function (a, b) {
      return a.start < b.start ? -1 : 1;
    })[0];
    var clock = market.broker_offset ? "broker " + market.broker_offset : "";
    if (!next) return card("Next news blackout", "none", clock || "no calendar");
    return card("Next news blackout", next.symbol + " " + stamp(next.start),
      "until " + stamp(next.end) + (clock ? " · " + clock : ""));
  }

  // each account-rules floor (ACCOUNT_RULES): its level, the distance to it and its reset
  function floorCards(rules) {
    if (!rules || !rules.floors) return [];
    return rules.floors.map(function (f) {
      var pct = f.distance_pct === null ? "" : " (" + f.distance_pct.toFixed(2) + "%)";
      var reset = f.next_reset ? " · resets " + stamp(f.next_reset) : "";
      var tight = f.distance <= 0 ? "blocked" : "";
      return card(rules.preset + ": " + f.rule, money(f.stop_at),
        money(f.distance) + pct + " away · firm's level " + money(f.level) + reset, tight);
    });
  }

  // the deepest fall of equity below its all-time peak: the lowest point of the chart's
  // drawdown pane (the same basis), not a figure of the trades' P/L alone
  function drawdownCard(deepest) {
    if (!deepest) return card("Max drawdown", "–", "equity below its all-time peak");
    return card("Max drawdown", money(deepest.amount), deepest.pct.toFixed(2) +
      "% · equity below its all-time peak" + (deepest.ts ? " · " + stamp(deepest.ts) : ""));
  }

  function showStatus(s, summary, deepest) {
    var pill = document.getElementById("state");
    pill.dataset.state = s.state;
    // the age is measured on the wall clock (is the trader alive?), whatever clock the rows use
    pill.textContent = s.state + (s.heartbeat_age_s !== undefined && s.heartbeat_age_s !== null
      ? " · heartbeat " + Math.round(s.heartbeat_age_s) + " s ago (wall clock)" : "");
    document.getElementById("clock").textContent = s.clock ? "Times: " + s.clock : "";
    document.getElementById("headline").textContent = headline(s);
    if (s.db) document.getElementById("db-path").textContent = s.db;
    var account = s.latest_account || {}, limits = s.limits || {};
    var asOf = account.ts ? "as of " + stamp(account.ts) : "";
    var cards = [
      card("Balance", money(account.balance), asOf),
      card("Equity", money(account.equity), asOf),
      card("Margin / free", money(account.margin) + " / " + money(account.margin_free)),
      entriesCard(s),
      card("Trades · win rate", (summary.count || 0) + " · " +
        (summary.win_rate_pct === null || summary.win_rate_pct === undefined ? "–"
          : summary.win_rate_pct.toFixed(1) + "%")),
      card("Net P/L", money(summary.net_pnl)),
      card("Profit factor", summary.profit_factor ? summary.profit_factor.toFixed(2) : "–"),
      drawdownCard(deepest),
      card("Entries today", limits.entries_today === undefined ? "–"
        : limits.entries_today + " / " + (limits.max_trades_per_day || "∞")),
      card("Daily loss", limits.daily_loss_pct === undefined ? "–"
        : limits.daily_loss_pct.toFixed(2) + "% / " + limits.max_daily_loss_pct + "%"),
      blackoutCard(s.market || {})].concat(floorCards(s.account_rules));
    var box = document.getElementById("cards");
    box.replaceChildren.apply(box, cards);
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
        stamp(s.heartbeat_ts), "banner warning"));
    }
  }

  // One chart, two panes (equity and balance above, drawdown below): the panes share one time
  // axis and one price-scale width, so the two are always aligned. The chart shows every point
  // until the user zooms or scrolls; from then on their view is kept until "Show all".
  var chart = null, series = null, pointCount = 0, userMoved = false;

  // A chart made as the backtest report makes them (charts.js: no logo, the footer carries
  // the attribution; price labels never cut by a pane edge), with its time axis: years and
  // months over a long span, "3 Mar" over days, hours within a day, all UTC. The crosshair
  // gives the full UTC time. The axis labels drawn are kept on the box (data-axis).
  function axisChart(id, options, crosshairTime) {
    var box = document.getElementById(id), made = BT.chart(id), seen = [];
    var label = made.options().timeScale.tickMarkFormatter;
    made.applyOptions(options);
    made.applyOptions({ localization: { timeFormatter: crosshairTime },
      rightPriceScale: { minimumWidth: 0 },
      timeScale: { tickMarkFormatter: function (time, type) {
        var text = label(time, type);
        if (seen.indexOf(text) < 0) {
          seen.push(text);
          box.dataset.axis = seen.slice(-60).join("|");
        }
        return text;
      } } });
    return made;
  }

  function makeChart() {
    var box = document.getElementById("equity-chart");
    chart = axisChart("equity-chart", {
      layout: { panes: { separatorColor: "#e3e8ee", enableResize: false } },
      timeScale: { timeVisible: true, secondsVisible: false } }, chartStamp);
    var LC = BT.LC;
    series = {
      equity: chart.addSeries(LC.LineSeries, { color: "#2962ff", lineWidth: 2, title: "" }, 0),
      balance: chart.addSeries(LC.LineSeries, { color: "#9aa5b1", lineWidth: 1,
        lastValueVisible: false, priceLineVisible: false }, 0),
      drawdown: chart.addSeries(LC.AreaSeries, { lineColor: "#d2453d",
        topColor: "rgba(210,69,61,0.05)", bottomColor: "rgba(210,69,61,0.35)",
        invertFilledArea: true, lineWidth: 1 }, 1)
    };
    // room above and below the drawdown line, so its lowest label is never cut off
    series.drawdown.priceScale().applyOptions({ scaleMargins: { top: 0.2, bottom: 0.3 },
      entireTextOnly: true });
    chart.panes()[0].setStretchFactor(2.2);
    chart.panes()[1].setStretchFactor(1);
    chart.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
      if (!range || !pointCount) return;
      userMoved = !(range.from <= 0.5 && range.to >= pointCount - 1.5);
      box.dataset.fitted = String(!userMoved);
    });
    document.getElementById("chart-fit").addEventListener("click", function () {
      userMoved = false;
      chart.timeScale().fitContent();
    });
  }

  function chartData(points) {
    var seen = {}, data = { equity: [], balance: [], drawdown: [] };
    points.forEach(function (p) {
      var t = Math.floor(Date.parse(p.ts) / 1000);
      if (seen[t]) return;  // the chart needs strictly increasing times
      seen[t] = true;
      data.equity.push({ time: t, value: p.equity });
      if (p.balance !== null && p.balance !== undefined) data.balance.push({ time: t, value: p.balance });
      data.drawdown.push({ time: t, value: p.drawdown });
    });
    return data;
  }

  function showEquity(points) {
    var box = document.getElementById("equity-chart");
    var last = points.length ? points[points.length - 1] : null;
    document.getElementById("equity-note").textContent = !points.length ? "no account snapshots yet"
      : points.length + " points from " + stamp(points[0].ts) + " to " + stamp(last.ts) +
        ": account snapshots" + (last.source === "heartbeat" ? ", the last from the latest heartbeat" : "");
    if (!window.BT || !BT.LC || !points.length) return;
    if (!chart) makeChart();
    var follow = !userMoved, data = chartData(points);
    pointCount = data.equity.length;
    series.equity.setData(data.equity);
    series.balance.setData(data.balance);
    series.drawdown.setData(data.drawdown);
    box.dataset.points = String(pointCount);
    if (follow) chart.timeScale().fitContent();
  }

  // Closed trades' P/L per UTC day of the exit, one bar a day (redrawn only when it changes,
  // so a user's zoom stays between refreshes)
  var daily = null;

  function showDaily(table) {
    var box = document.getElementById("daily-chart"), rows = table.rows || [];
    box.dataset.bars = String(rows.length);
    document.getElementById("daily-note").textContent = rows.length
      ? rows.length + " days with closed trades · net " + money(table.total.net_pnl)
      : "no closed trades yet";
    if (!window.BT || !BT.LC || !rows.length) return;
    if (!daily) {
      var made = axisChart("daily-chart", { timeScale: { timeVisible: false, maxBarSpacing: 40 } },
        function (seconds) { return chartStamp(seconds).slice(0, 10) + " (UTC day)"; });
      daily = { chart: made, key: "", bars: made.addSeries(BT.LC.HistogramSeries,
        { priceFormat: { type: "price", precision: 2, minMove: 0.01 } }) };
    }
    var key = JSON.stringify(rows);
    if (key === daily.key) return;
    daily.key = key;
    daily.bars.setData(rows.map(function (r) {
      return { time: Date.parse(r.day + "T00:00:00Z") / 1000, value: r.net_pnl,
        color: r.net_pnl < 0 ? "#d2453d" : "#2e9d5b" };
    }));
    daily.chart.timeScale().fitContent();
  }

  // an order's SL / TP in one cell ("–" for a level not set): a stop change shows the
  // levels it set
  function withStops(row) {
    var set = function (v) { return v ? v : "–"; };
    var stops = row.sl || row.tp ? set(row.sl) + " / " + set(row.tp) : "";
    var of = { closed: "it closed", opened: "it opened" }[row.pnl_of] || "";
    var detail = [row.reason, row.outcome].filter(Boolean).join(" → ");
    return Object.assign({}, row, { stops: stops, pnl_of: of, detail: detail });
  }

  function showTables(status, r) {
    document.getElementById("positions-note").textContent =
      status.heartbeat_ts ? "as of " + stamp(status.heartbeat_ts) : "";
    fillTable("positions", [["Ticket", "ticket", "num", "wide"], ["Symbol", "symbol"],
      ["Side", "side"], ["Lots", "volume", "num"], ["P/L", "profit", "money"],
      ["Open", "price_open", "num"], ["Now", "price_current", "num"], ["SL", "sl", "price"],
      ["TP", "tp", "price"], ["Comment", "comment", "text", "wide"]],
      status.positions || [], "no open positions");
    document.getElementById("pending-note").textContent =
      status.heartbeat_ts ? "as of " + stamp(status.heartbeat_ts) : "";
    fillTable("pending", [["Ticket", "ticket", "num", "wide"], ["Symbol", "symbol"],
      ["Type", "type"], ["Lots", "volume", "num"], ["Price", "price", "price"],
      ["SL", "sl", "price"], ["TP", "tp", "price"], ["Placed", "placed", "time", "wide"],
      ["Expires", "expires", "time"], ["Comment", "comment", "text", "wide"]],
      status.pending_orders || [], "no pending orders");
    // one row per order: what was asked (a stop change shows the SL/TP it set) and what
    // became of it, with the P/L of the trade it opened or closed
    fillTable("orders", [["Asked", "intent_ts", "time"], ["Symbol", "symbol"],
      ["Kind", "kind"], ["Side", "side"], ["Lots", "volume", "num"], ["SL / TP", "stops"],
      ["Outcome", "status"], ["Fill", "fill_price", "num"], ["P/L", "pnl", "money"],
      ["Trade", "pnl_of", "text", "wide"], ["Retcode", "retcode", "num", "wide"], ["Id", "client_order_id", "text", "wide"],
      ["Detail", "detail", "text", "wide"]], r[3].rows.map(withStops), "no orders yet");
    fillTable("trades", [["Exit", "exit_time", "time"], ["Symbol", "symbol"],
      ["Side", "direction"], ["Lots", "volume", "num"], ["P/L", "pnl", "money"],
      ["Closed by", "exit_reason"], ["Entry price", "entry_price", "num", "wide"],
      ["Exit price", "exit_price", "num", "wide"], ["Entry", "entry_time", "time", "wide"],
      ["Ticket", "position_ticket", "num", "wide"]], r[6].rows, "no closed trades yet");
    var bySymbol = r[8], total = Object.assign({ symbol: "all", total: true }, bySymbol.total);
    fillTable("symbols", [["Symbol", "symbol"], ["Trades", "count", "num"],
      ["Win rate", "win_rate_pct", "pct"], ["Net P/L", "net_pnl", "money"],
      ["Profit factor", "profit_factor", "num"], ["Won", "gross_win", "amount", "wide"],
      ["Lost", "gross_loss", "amount", "wide"], ["Lots", "lots", "num", "wide"]],
      bySymbol.rows.length ? bySymbol.rows.concat([total]) : [], "no closed trades yet");
    fillTable("signals", [["Bar", "bar_time", "time"], ["Symbol", "symbol"],
      ["Target", "position", "num"], ["Action", "action"], ["Outcome", "outcome"],
      ["Decided", "ts", "time", "wide"]], r[4].rows, "no signals yet");
    fillTable("events", [["Time", "ts", "time"], ["Level", "level", "text", "wide"],
      ["Kind", "kind"], ["Symbol", "symbol"], ["Message", "message"]], r[5].rows,
      "no events yet");
  }

  // The traders served (several databases): a selector, shown only when there is a choice.
  // The name chosen goes into the address, so a reload or a bookmark keeps it.
  var selector = document.getElementById("trader");

  function traderLabel(t) {
    var about = [t.strategy, t.account ? "account " + t.account : "", t.mode];
    return [t.name].concat(about.filter(Boolean)).join(" · ");
  }

  function showTraders(list) {
    var traders = list.traders || [], key = JSON.stringify(traders);
    document.getElementById("trader-box").hidden = traders.length < 2;
    if (selector.dataset.key !== key) {  // rebuilt only when it changed: an open list stays
      selector.replaceChildren.apply(selector, traders.map(function (t) {
        var option = el("option", traderLabel(t));
        option.value = t.name;
        return option;
      }));
      selector.dataset.key = key;
    }
    selector.value = trader || (traders[0] || {}).name || "";
  }

  selector.addEventListener("change", function () {
    trader = selector.value;
    document.body.dataset.trader = trader;
    var address = new URL(window.location.href);
    address.searchParams.set("trader", trader);
    window.history.replaceState(null, "", address);
    userMoved = false;  // another trader's chart: show all of it
    if (daily) daily.key = "";
    refresh();
  });

  var refreshes = 0;

  function refresh() {
    var asked = trader;
    if (refreshes++ % 10 === 0) getJson("/api/traders").then(showTraders).catch(function () {});
    Promise.all([
      getJson("/api/status"), getJson("/api/summary"), getJson("/api/equity?limit=2000"),
      getJson("/api/order_groups?limit=25"), getJson("/api/signals?limit=25"),
      getJson("/api/events?limit=25&exclude_kind=heartbeat"), getJson("/api/trades?limit=25"),
      getJson("/api/daily_pnl"), getJson("/api/symbols")
    ]).then(function (r) {
      if (asked !== trader) return;  // answers for the trader shown before a switch
      showStatus(r[0], r[1], r[2].max_drawdown);
      showEquity(r[2].points);
      showTables(r[0], r);
      showDaily(r[7]);
      document.body.dataset.shown = trader;
      document.getElementById("updated").textContent =
        "Updated " + stamp(new Date().toISOString(), true);
    }).catch(function (error) {
      document.getElementById("updated").textContent = "Update failed: " + error.message;
    });
  }

  document.body.dataset.trader = trader;
  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
