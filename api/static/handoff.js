/* "Talk to a person" in the web chat (issue 15): under every answer, a button opens a small form (e-mail,
 * explicit consent with the retention period) that posts to /api/handoff and shows the case number.
 *
 * Kept apart from chat.js: it watches the conversation log for answers and learns each answer's session
 * from the replies passing through window.Sibyl.transport (streamed or not). Data enters the page as text
 * only (textContent), like chat.js.
 */
(function () {
  "use strict";

  var sessions = {}; // message_id -> session_id
  var lastSession = null;
  var strings = {};
  var privacy = {};
  var seq = 0;

  function lang() {
    return document.documentElement.lang === "en" ? "en" : "it";
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    });
  }

  function load() {
    var l = lang();
    if (strings[l] && privacy[l]) return Promise.resolve(l);
    return Promise.all([getJSON("/api/ui/" + l), getJSON("/api/handoff/privacy?lang=" + l)]).then(function (got) {
      strings[l] = got[0];
      privacy[l] = got[1];
      return l;
    });
  }

  function t(l, key, values) {
    var template = (strings[l] || {})[key] || "";
    return template.replace(/\{(\w+)\}/g, function (match, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match;
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (attrs[key] !== null && attrs[key] !== false) node.setAttribute(key, attrs[key] === true ? "" : attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.append(child); });
    return node;
  }

  function post(body) {
    return fetch("/api/handoff", {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json" },
    }).then(function (res) {
      return res.json().then(function (data) { return { ok: res.ok, data: data || {} }; },
        function () { return { ok: false, data: {} }; });
    });
  }

  function openForm(article, opener, sessionId) {
    load().then(function (l) {
      var existing = article.querySelector(".handoff-form");
      if (existing) { existing.querySelector("input").focus(); return; }
      seq += 1;
      var id = "handoff-" + seq;
      var status = el("p", { class: "handoff-status", role: "status", "aria-live": "polite" });
      var email = el("input", { type: "email", id: id + "-email", name: "email", autocomplete: "email", required: true,
        maxlength: "320" });
      var consent = el("input", { type: "checkbox", id: id + "-consent", name: "consent",
        "aria-describedby": id + "-privacy" });
      var send = el("button", { type: "submit", class: "handoff-send", text: t(l, "handoff_send") });
      var cancel = el("button", { type: "button", class: "handoff-cancel", text: t(l, "handoff_cancel") });
      var form = el("form", { class: "handoff-form", lang: l, "aria-labelledby": id + "-title", novalidate: true }, [
        el("h3", { id: id + "-title", text: t(l, "handoff_title") }),
        el("p", { text: t(l, "handoff_intro") }),
        el("label", { for: id + "-email", text: t(l, "handoff_email") }), email,
        el("p", { class: "handoff-consent" }, [consent, el("label", { for: id + "-consent", text: t(l, "handoff_consent") })]),
        el("p", { id: id + "-privacy", class: "handoff-privacy", text: privacy[l].text }),
        el("p", { class: "handoff-actions" }, [send, cancel]), status]);
      cancel.addEventListener("click", function () { form.remove(); opener.focus(); });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (!consent.checked) { status.textContent = t(l, "handoff_need_consent"); consent.focus(); return; }
        send.setAttribute("aria-disabled", "true");
        post({ session_id: sessionId, consent: true, email: email.value, language: l }).then(function (r) {
          if (r.ok) {
            var done = el("p", { class: "handoff-done", role: "status", lang: l,
              text: t(l, "handoff_done", { number: r.data.number }) });
            done.dataset.caseNumber = r.data.number;
            form.replaceWith(done);
            opener.remove();
            return;
          }
          send.removeAttribute("aria-disabled");
          status.textContent = t(l, "handoff_error", { detail: r.data.detail || "" });
          if (r.data.code === "bad_email" || r.data.code === "email_required") email.focus();
        }, function () {
          send.removeAttribute("aria-disabled");
          status.textContent = t(l, "handoff_error", { detail: "" });
        });
      });
      opener.after(form);
      email.focus();
    });
  }

  function decorate(article) {
    var mid = article.getAttribute("data-message-id");
    if (!mid || article.querySelector(".handoff-open")) return;
    var sessionId = article.getAttribute("data-session-id") || sessions[mid] || lastSession;
    if (!sessionId) return;
    load().then(function (l) {
      var button = el("button", { type: "button", class: "handoff-open", lang: l, text: t(l, "handoff_button") });
      button.addEventListener("click", function () { openForm(article, button, sessionId); });
      article.append(button);
    });
  }

  function watch() {
    var log = document.getElementById("log");
    var sibyl = window.Sibyl;
    if (!log || !sibyl || !sibyl.transport) return;
    var ask = sibyl.transport.requestAnswer;
    sibyl.transport.requestAnswer = function (payload, onProgress) {
      return ask(payload, onProgress).then(function (reply) {
        if (reply && reply.session_id) {
          lastSession = reply.session_id;
          if (reply.message_id) sessions[reply.message_id] = reply.session_id;
        }
        return reply;
      });
    };
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType === 1 && node.matches("article.msg.bot[data-message-id]")) decorate(node);
        });
      });
    }).observe(log, { childList: true });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
