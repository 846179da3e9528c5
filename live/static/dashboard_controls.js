// The dashboard's controls (live/dashboard_controls.py): halt, reduce, close all, resume and
// close one position. Shown only when the server says they are on, and only while the trader
// they act on is the one shown (document.body.dataset.trader, set by dashboard.js); for any
// other the section says whose they are instead. Each action asks for a confirmation that
// says what will happen, then POSTs with the session's CSRF token and the trader's name. The
// trader acts on its next loop; the events list then shows what it did and who asked.
(function () {
  "use strict";
  var REFRESH_MS = 3000;
  var token = new URLSearchParams(window.location.search).get("token");
  var auth = token ? { Authorization: "Bearer " + token } : {};
  var csrf = null, box = null;
  var drawn = null;  // {shown, name}: the trader selection the buttons were drawn for

  // the trader selected on the page ("" until one is chosen: the server's default)
  function shown() {
    return document.body.dataset.trader || "";
  }

  function forTrader(path, name) {
    return name ? path + "?trader=" + encodeURIComponent(name) : path;
  }

  var ACTIONS = [
    ["halt", "Halt", "Halt: no new entries; open positions keep their stops and exits go on."],
    ["reduce", "Reduce", "Reduce: no new entries; positions are only closed, never added to."],
    ["close_all", "Close all", "Close all: every position and pending entry of this trader is " +
      "closed at market, then it stays halted until you resume."],
    ["resume", "Resume", "Resume: remove the kill switch; the trader opens new positions again."]
  ];

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function getJson(path) {
    return fetch(path, { headers: auth, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(path + ": HTTP " + response.status);
        return response.json();
      });
  }

  function post(path) {
    var headers = Object.assign({ "X-CSRF-Token": csrf || "", "Content-Type": "application/json" }, auth);
    return fetch(path, { method: "POST", headers: headers, body: "{}", cache: "no-store",
      credentials: "same-origin" }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    });
  }

  // asks, then sends for the trader the buttons were drawn for, unless another is shown
  // now; the outcome (or the refusal) is said under the buttons
  function act(path, question) {
    if (!drawn || drawn.shown !== shown()) {
      say("Another trader is shown now: nothing was sent.", true);
      refresh();
      return;
    }
    var name = drawn.name;
    if (!window.confirm("Trader " + name + ". " + question +
        "\n\nThe trader acts on its next loop. Continue?")) {
      say("Cancelled: nothing was sent.");
      return;
    }
    post(forTrader(path, name)).then(function (r) {
      say(r.ok ? r.body.message : "Refused (HTTP " + r.status + "): " + (r.body.error || ""), !r.ok);
      refresh();
    }).catch(function (error) { say("Not sent: " + error.message, true); });
  }

  function say(text, failed) {
    var line = document.getElementById("controls-result");
    line.textContent = text;
    line.classList.toggle("failed", !!failed);
  }

  // the section, with buttons or (`notice`) with only the words saying whose they are
  function build(notice) {
    if (box) box.remove();
    box = el("section", null, "controls");
    box.id = "controls";
    var heading = el("div", null, "heading");
    heading.appendChild(el("h2", "Controls"));
    heading.appendChild(el("span", "", "note"));
    heading.lastChild.id = "controls-state";
    box.appendChild(heading);
    var main = document.querySelector("main");
    main.insertBefore(box, main.firstChild);
    if (notice) {
      box.appendChild(el("p", notice, "note"));
      box.lastChild.id = "controls-notice";
      return;
    }
    var row = el("div", null, "control-buttons");
    ACTIONS.forEach(function (a) {
      var button = el("button", a[1], a[0] === "close_all" ? "danger" : "");
      button.type = "button";
      button.dataset.action = a[0];
      button.addEventListener("click", function () { act("/api/controls/" + a[0], a[2]); });
      row.appendChild(button);
    });
    box.appendChild(row);
    var list = el("div", null, "control-positions");
    list.id = "control-positions";
    box.appendChild(list);
    var result = el("p", "", "note");
    result.id = "controls-result";
    result.setAttribute("role", "status");
    box.appendChild(result);
  }

  function showState(c) {
    var text = "kill switch: " + (c.kill_switch || "off");
    if (c.asked_by) text += " (asked from " + c.asked_by.via + " " + c.asked_by.address + " at " +
      String(c.asked_by.at).replace("T", " ").slice(0, 19) + " UTC)";
    if (c.closes_waiting && c.closes_waiting.length) {
      text += " · waiting for the trader: close #" + c.closes_waiting.join(", #");
    }
    document.getElementById("controls-state").textContent = text;
    box.querySelectorAll(".control-buttons button").forEach(function (b) {
      b.classList.toggle("current", b.dataset.action === c.kill_switch);
    });
  }

  // a button per position whose ticket is a positive integer: the ticket goes into the
  // request's path, so a value from the database can never make it another request
  function showPositions(rows) {
    var list = document.getElementById("control-positions");
    rows = rows.filter(function (p) { return Number.isSafeInteger(p.ticket) && p.ticket > 0; });
    list.replaceChildren(el("span", rows.length ? "Close one position:" : "No open position to close.", "note"));
    rows.forEach(function (p) {
      var what = p.symbol + " " + p.side + " " + p.volume + " lots";
      var button = el("button", "Close #" + p.ticket + " (" + what + ")");
      button.type = "button";
      button.dataset.ticket = String(p.ticket);
      button.addEventListener("click", function () {
        act("/api/controls/close/" + p.ticket, "Close position #" + p.ticket + " (" + what +
          ") at market.");
      });
      list.appendChild(button);
    });
  }

  function refresh() {
    var asked = shown();
    return getJson(forTrader("/api/controls", asked)).then(function (c) {
      var mine = c.enabled && c.trader === c.acts_on;
      var positions = mine ? getJson(forTrader("/api/positions", c.acts_on)) : null;
      return Promise.all([c, positions]);
    }).then(function (r) {
      var c = r[0];
      if (asked !== shown()) return;  // the answer for a trader shown before a switch
      document.documentElement.dataset.controls = c.enabled ? "on" : "off";
      if (!c.enabled && !c.notice) {  // off: no section at all
        if (box) { box.remove(); box = null; }
        drawn = null;
        return;
      }
      if (!c.enabled || c.trader !== c.acts_on) {
        drawn = null;
        if (!box || box.dataset.notice !== c.notice) {
          build(c.notice);
          box.dataset.notice = c.notice;
        }
        return;
      }
      csrf = c.csrf_token;
      if (!box || box.dataset.notice) build();
      drawn = { shown: asked, name: c.acts_on };
      showState(c);
      showPositions(r[1].rows || []);
    }).catch(function () { /* the main page says when updates fail */ });
  }

  // another trader chosen: no button of the one before stays usable while the answer comes
  var selector = document.getElementById("trader");
  if (selector) {
    selector.addEventListener("change", function () {
      drawn = null;
      if (box) { box.remove(); box = null; }
      refresh();
    });
  }

  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
