/* Sibyl web chat: plain JavaScript, no build step.
 *
 * Every interface string comes from /api/ui/<lang> (prompts/ui.<lang>.toml). Every piece of data
 * (questions, answers, passages, suggestions) enters the page through textContent / text nodes,
 * never through innerHTML, so "<script>" or "<img onerror>" in a message is shown as text.
 */
(function () {
  "use strict";

  var LANGS = ["it", "en"];
  var MAX_CHARS = 2000;
  var state = { lang: "it", ui: {}, sessionId: null, busy: false, seq: 0, started: false };
  var log, form, input, sendButton, counter;

  // --- small helpers --------------------------------------------------------------------------
  function t(key, values) {
    var template = state.ui[key] || "";
    return template.replace(/\{(\w+)\}/g, function (match, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match;
    });
  }

  /* el("p", {class: "x", text: "..."}, child, "text", ...): attributes as attributes, text as text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (key) {
      var value = a[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.append(child); // a string becomes a text node
    }
    return node;
  }

  function safeUrl(url) {
    return /^https?:\/\//i.test(url || "") ? url : null;
  }

  function scrollToShow(node) {
    if (!log) return;
    var top = node.offsetTop - log.offsetTop - 8;
    log.scrollTop = node.offsetHeight > log.clientHeight ? top : log.scrollHeight;
  }

  // --- talking to the API ---------------------------------------------------------------------
  function ApiError(status, code, detail, retryAfter) {
    this.status = status;
    this.code = code;
    this.detail = detail || "";
    this.retryAfter = retryAfter || null;
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }).then(
      function (res) {
        return res.json().then(
          function (data) { return { res: res, data: data }; },
          function () { return { res: res, data: null }; }
        );
      },
      function () { throw new ApiError(0, "network"); }
    ).then(function (r) {
      if (!r.res.ok) {
        var data = r.data || {};
        var retry = Number(r.res.headers.get("Retry-After")) || data.retry_after || null;
        throw new ApiError(r.res.status, data.code || "http_error", data.detail, retry);
      }
      if (r.data === null) throw new ApiError(r.res.status, "bad_response");
      return r.data;
    });
  }

  /* The one function that asks for an answer; resolves to the /api/chat JSON object.
   * A streaming transport can replace it (window.Sibyl.transport.requestAnswer) and fall back to it;
   * `onProgress(partialText)` is for such a transport and unused here. */
  function requestAnswer(payload, onProgress) { // eslint-disable-line no-unused-vars
    return postJSON("/api/chat", payload);
  }

  var transport = { requestAnswer: requestAnswer };

  function describeError(err) {
    if (!(err instanceof ApiError) || err.status === 0) return t("error_network");
    if (err.status === 429) return t("error_rate", { seconds: err.retryAfter || 60 });
    if (err.status >= 400 && err.status < 500 && err.detail) return t("error_input", { detail: err.detail });
    return t("error_server");
  }

  // --- strings and language -------------------------------------------------------------------
  function initialLanguage() {
    var asked = new URLSearchParams(window.location.search).get("lang");
    if (LANGS.indexOf(asked) >= 0) return asked;
    try {
      var saved = window.localStorage.getItem("sibyl.lang");
      if (LANGS.indexOf(saved) >= 0) return saved;
    } catch (e) { /* storage blocked (e.g. third-party iframe) */ }
    var prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || ""];
    for (var i = 0; i < prefs.length; i++) {
      var code = String(prefs[i]).toLowerCase().slice(0, 2);
      if (LANGS.indexOf(code) >= 0) return code;
    }
    return "it";
  }

  function loadStrings(lang) {
    return fetch("/api/ui/" + lang, { headers: { Accept: "application/json" } }).then(function (res) {
      if (!res.ok) throw new ApiError(res.status, "ui");
      return res.json();
    }).then(function (ui) {
      state.lang = lang;
      state.ui = ui;
      applyStrings();
    });
  }

  function applyStrings() {
    document.documentElement.lang = state.lang;
    document.title = t("page_title");
    document.querySelectorAll("[data-ui]").forEach(function (node) { node.textContent = t(node.dataset.ui); });
    document.querySelectorAll("[data-ui-label]").forEach(function (node) {
      node.setAttribute("aria-label", t(node.dataset.uiLabel));
    });
    document.querySelectorAll("[data-ui-placeholder]").forEach(function (node) {
      node.setAttribute("placeholder", t(node.dataset.uiPlaceholder));
    });
    document.getElementById("lang-toggle").setAttribute("lang", state.lang === "it" ? "en" : "it");
    updateCounter();
    if (micButton) setMic(micButton.getAttribute("aria-pressed") === "true");
  }

  function toggleLanguage(event) {
    if (event) event.preventDefault(); // without JavaScript the button reloads the page in the other language
    var next = state.lang === "it" ? "en" : "it";
    try { window.localStorage.setItem("sibyl.lang", next); } catch (e) { /* ignore */ }
    loadStrings(next).then(function () {
      if (!state.started) renderWelcome();
    }, function (err) { addError(describeError(err)); });
  }

  // --- messages -------------------------------------------------------------------------------
  function addToLog(node) {
    log.append(node);
    scrollToShow(node);
    return node;
  }

  function renderWelcome() {
    log.replaceChildren();
    var examples = el("div", { class: "chips", role: "group", "aria-label": t("welcome_examples") },
      chip(t("example_1"), state.lang), chip(t("example_2"), state.lang));
    addToLog(el("article", { class: "msg bot welcome" },
      el("p", { class: "who", "data-ui": "assistant", text: t("assistant") }),
      el("p", { text: t("welcome") }),
      el("p", { class: "chips-label", text: t("welcome_examples") }),
      examples));
  }

  function addUserMessage(text) {
    return addToLog(el("article", { class: "msg user" },
      el("p", { class: "who", "data-ui": "you", text: t("you") }),
      el("p", { class: "text", text: text })));
  }

  function addTyping() {
    return addToLog(el("div", { class: "msg bot typing", lang: state.lang },
      el("span", { class: "dots", "aria-hidden": "true" }, el("span"), el("span"), el("span")),
      el("span", { class: "typing-label", text: t("typing") })));
  }

  function addError(text) {
    return addToLog(el("div", { class: "msg error", role: "alert", lang: state.lang }, el("p", { text: text })));
  }

  function addNote(text) {
    return addToLog(el("p", { class: "note", lang: state.lang, text: text }));
  }

  function isNoAnswer(reply) {
    return reply.answered === false && reply.intent !== "greeting" && reply.intent !== "help";
  }

  /* The answer text ends with a plain-text source list ("Fonti:\n[1] ..."): the page shows the
   * structured `sources` instead, so that trailing block is dropped here. */
  function bodyLines(answer) {
    var lines = String(answer || "").split("\n");
    for (var i = lines.length - 1; i >= 0; i--) {
      var line = lines[i].trim();
      if (!line || /^\[\d+\]\s/.test(line)) continue;
      if (/:$/.test(line) && i < lines.length - 1) return lines.slice(0, i);
      break;
    }
    return lines;
  }

  function inline(text, ctx) {
    var out = [];
    var pattern = /\[(\d+)\]/g;
    var last = 0;
    var match;
    while ((match = pattern.exec(text)) !== null) {
      var source = ctx.sources[match[1]];
      if (!source) continue;
      if (match.index > last) out.push(text.slice(last, match.index));
      out.push(citeButton(source, ctx, "[" + source.n + "]", "cite"));
      last = match.index + match[0].length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  function renderAnswer(answer, ctx) {
    var body = el("div", { class: "answer", lang: ctx.language });
    var list = null;
    bodyLines(answer).forEach(function (raw) {
      var line = raw.trim();
      if (!line) { list = null; return; }
      if (/^[-•]\s+/.test(line)) {
        if (!list) { list = el("ul"); body.append(list); }
        var li = el("li");
        li.append.apply(li, inline(line.replace(/^[-•]\s+/, ""), ctx));
        list.append(li);
      } else {
        list = null;
        var p = el("p");
        p.append.apply(p, inline(line, ctx));
        body.append(p);
      }
    });
    return body;
  }

  function citeButton(source, ctx, label, cls) {
    return el("button", {
      type: "button", class: cls, "data-n": source.n, "aria-expanded": "false", "aria-controls": ctx.panel.id,
      "aria-label": cls === "cite" ? label + " " + source.title : null, text: label,
      onclick: function (event) { togglePassage(ctx, source, event.currentTarget); },
    });
  }

  function passageText(source) {
    var lines = String(source.text || "").split("\n");
    while (lines.length && (lines[0].trim() === source.title || lines[0].trim() === source.section)) lines.shift();
    return lines.join("\n");
  }

  function setExpanded(ctx, n) {
    ctx.article.querySelectorAll("button[data-n]").forEach(function (b) {
      b.setAttribute("aria-expanded", String(b.dataset.n === String(n)));
    });
  }

  function closePassage(ctx, returnFocus) {
    ctx.panel.hidden = true;
    ctx.panel.dataset.n = "";
    setExpanded(ctx, null);
    if (returnFocus && ctx.opener) ctx.opener.focus();
  }

  function togglePassage(ctx, source, opener) {
    if (!ctx.panel.hidden && ctx.panel.dataset.n === String(source.n)) {
      closePassage(ctx, false);
      return;
    }
    ctx.opener = opener;
    var headingId = ctx.panel.id + "-h";
    ctx.panel.setAttribute("aria-labelledby", headingId);
    ctx.panel.replaceChildren(
      el("h2", { id: headingId, lang: state.lang, text: t("passage_heading", { n: source.n }) }),
      el("dl", null,
        el("dt", { "data-ui": "passage_document", text: t("passage_document") }),
        el("dd", { lang: sourceLanguage(source), text: source.title }),
        el("dt", { "data-ui": "passage_section", text: t("passage_section") }),
        el("dd", { lang: sourceLanguage(source), text: source.section })),
      el("blockquote", { class: "passage-text", lang: sourceLanguage(source), "aria-label": t("passage_text") },
        passageText(source)),
      documentLink(source),
      el("button", { type: "button", class: "close", "data-ui": "close", text: t("close"),
        onclick: function () { closePassage(ctx, true); } }));
    ctx.panel.dataset.n = String(source.n);
    ctx.panel.hidden = false;
    setExpanded(ctx, source.n);
    ctx.panel.focus();
  }

  /* The whole document, public and read-only (/documenti/<id>), scrolled to this passage and highlighting it. */
  function documentLink(source) {
    if (!source.document || !source.id) return null;
    var href = "/documenti/" + encodeURIComponent(source.document) + "?lang=" + state.lang + "#" +
      encodeURIComponent(source.id).replace(/%3A/gi, ":");
    return el("p", { class: "doc-link" }, el("a", { href: href, target: "_blank", rel: "noopener",
      "data-ui": "document_open", text: t("document_open") }));
  }

  /* The language a source is written in (the city's documents are Italian). */
  function sourceLanguage(source) {
    return source.language || (source.metadata && source.metadata.language) || "it";
  }

  function chip(text, lang) {
    return el("button", { type: "button", class: "chip", lang: lang || null, text: text,
      onclick: function () { sendMessage(text); } });
  }

  /* 👍 / 👎 drawn as SVG (Material Icons "thumb_up"/"thumb_down", Apache-2.0): no emoji font needed. */
  var THUMB_UP = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 " +
    "7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";
  var THUMB_DOWN = "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 " +
    "4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z";

  function icon(d) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  }

  function renderFeedback(reply) {
    var status = el("span", { class: "fb-status", role: "status" });
    var buttons = [];
    var reason = renderReason(reply, status);
    /* One current vote per answer in a session: pressing the other thumb changes it (the server keeps one). */
    function rate(value, button) {
      if (button.getAttribute("aria-disabled") === "true" || button.getAttribute("aria-pressed") === "true") return;
      buttons.forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
      postJSON("/api/feedback", { session_id: reply.session_id, message_id: reply.message_id, rating: value })
        .then(function () {
          buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
          status.textContent = t("feedback_thanks");
          reason.hidden = value !== -1;
        }, function () {
          status.textContent = t("feedback_error");
        }).then(function () {
          buttons.forEach(function (b) { b.removeAttribute("aria-disabled"); });
        });
    }
    [[1, THUMB_UP, "feedback_up", "up"], [-1, THUMB_DOWN, "feedback_down", "down"]].forEach(function (spec) {
      var b = el("button", { type: "button", class: "fb " + spec[3], "aria-pressed": "false",
        "aria-label": t(spec[2]), title: t(spec[2]) }, icon(spec[1]));
      b.addEventListener("click", function () { rate(spec[0], b); });
      buttons.push(b);
    });
    return el("div", { class: "feedback", role: "group", "aria-label": t("feedback_question"), lang: state.lang },
      el("span", { class: "fb-question", text: t("feedback_question") }), buttons[0], buttons[1], status, reason);
  }

  /* After a 👎: an optional short reason, sent with the same vote (the URP reads it in the console). */
  function renderReason(reply, status) {
    var id = "reason-" + reply.message_id;
    var box = el("input", { type: "text", id: id, class: "fb-reason-text", maxlength: "500", autocomplete: "off" });
    var form = el("form", { class: "fb-reason", hidden: true },
      el("label", { for: id, "data-ui": "feedback_reason_label", text: t("feedback_reason_label") }), box,
      el("button", { type: "submit", "data-ui": "feedback_reason_send", text: t("feedback_reason_send") }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var comment = box.value.trim();
      if (!comment) { box.focus(); return; }
      postJSON("/api/feedback", { session_id: reply.session_id, message_id: reply.message_id, rating: -1,
        comment: comment }).then(function () {
        form.hidden = true;
        status.textContent = t("feedback_reason_thanks");
      }, function () { status.textContent = t("feedback_error"); });
    });
    return form;
  }

  function addBotMessage(reply) {
    state.seq += 1;
    var id = "m" + state.seq;
    var sources = {};
    (reply.sources || []).forEach(function (s) { sources[String(s.n)] = s; });
    // The conversation travels with the answer: a voice-first reply (not through transport) can be handed on.
    var article = el("article", { class: "msg bot" + (isNoAnswer(reply) ? " no-answer" : ""), id: id,
      "data-message-id": reply.message_id || "", "data-session-id": reply.session_id || "" });
    var panel = el("section", { class: "passage", id: id + "-passage", tabindex: "-1", hidden: true });
    var ctx = { article: article, panel: panel, sources: sources, language: reply.language, opener: null };
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") closePassage(ctx, true);
    });
    article.append(el("p", { class: "who", "data-ui": "assistant", text: t("assistant") }));
    if (isNoAnswer(reply)) {
      var url = safeUrl(t("urp_url"));
      article.append(el("div", { class: "notice", lang: state.lang },
        el("p", { class: "notice-title", text: t("no_answer_title") }),
        url ? el("a", { href: url, target: "_blank", rel: "noopener", text: t("no_answer_contact") }) : null));
    }
    if (reply.followup && reply.answered) {
      article.append(el("p", { class: "note", "data-ui": "followup_note", text: t("followup_note") }));
    }
    article.append(renderAnswer(reply.answer, ctx));
    var list = reply.sources || [];
    if (list.length) {
      var ol = el("ol", { class: "sources" });
      list.forEach(function (s) {
        var link = citeButton(s, ctx, "[" + s.n + "] " + s.title + " › " + s.section, "source-link");
        link.setAttribute("lang", sourceLanguage(s));
        ol.append(el("li", null, link));
      });
      article.append(el("div", { class: "sources-box" }, el("h2", { "data-ui": "sources", text: t("sources") }), ol));
    }
    article.append(panel);
    if (reply.suggestions && reply.suggestions.length) {
      var chips = el("div", { class: "chips", role: "group", "aria-label": t("suggestions"), lang: state.lang });
      reply.suggestions.forEach(function (s) { chips.append(chip(s, reply.language)); });
      article.append(el("p", { class: "chips-label", "data-ui": "suggestions", text: t("suggestions") }), chips);
    }
    if (reply.message_id) article.append(renderListen(reply));
    if (reply.message_id && reply.session_id) article.append(renderFeedback(reply));
    return addToLog(article);
  }

  /* What a screen reader hears when an answer arrives: one short sentence, not the whole answer. */
  function summaryOf(reply) {
    var lead = (reply.structured && reply.structured.lead) || bodyLines(reply.answer)[0] || "";
    lead = String(lead).replace(/\s*\[\d+\]/g, "").trim();
    var sentence = lead.match(/^.*?[.!?](\s|$)/);
    var text = sentence ? sentence[0].trim() : lead;
    return text.length > 160 ? text.slice(0, 157).replace(/\s+\S*$/, "") + "…" : text;
  }

  function announce(reply) {
    var announcer = document.getElementById("announcer");
    if (!announcer) return;
    var count = (reply.sources || []).length;
    var prefix = isNoAnswer(reply) ? t("announce_no_answer")
      : t(count ? "announce_answer" : "announce_answer_plain", { count: count });
    announcer.replaceChildren();
    window.setTimeout(function () { // a fresh text node, so the same summary twice is read twice
      announcer.replaceChildren(el("span", { lang: state.lang, text: prefix }), " ",
        el("span", { lang: reply.language || state.lang, text: summaryOf(reply) }));
    }, 50);
  }

  // --- voice: "listen" on each answer, a microphone in the composer (issue 16) -------------------
  var player = { audio: null, url: null, button: null };

  function stopPlayback() {
    if (player.audio) player.audio.pause();
    if (player.url) URL.revokeObjectURL(player.url);
    if (player.button) {
      player.button.setAttribute("aria-pressed", "false");
      player.button.textContent = t("listen");
    }
    player.audio = player.url = player.button = null;
  }

  function renderListen(reply) {
    var status = el("span", { class: "listen-status", role: "status" });
    var button = el("button", { type: "button", class: "listen", "aria-pressed": "false", lang: state.lang,
      text: t("listen") });
    button.addEventListener("click", function () {
      if (player.button === button) { stopPlayback(); return; }
      stopPlayback();
      status.textContent = "";
      button.setAttribute("aria-busy", "true");
      fetch("/api/tts?message_id=" + encodeURIComponent(reply.message_id), { credentials: "same-origin" })
        .then(function (res) {
          if (!res.ok) throw new ApiError(res.status, "tts");
          return res.blob();
        })
        .then(function (blob) {
          player.url = URL.createObjectURL(blob);
          player.audio = new Audio(player.url);
          player.button = button;
          button.setAttribute("aria-pressed", "true");
          button.textContent = t("listen_stop");
          player.audio.addEventListener("ended", stopPlayback);
          return player.audio.play();
        })
        .catch(function () { stopPlayback(); status.textContent = t("listen_error"); })
        .then(function () { button.removeAttribute("aria-busy"); });
    });
    return el("div", { class: "listen-row" }, button, status);
  }

  var MAX_RECORD_MS = 55000; // under the server's 60 s cap (SIBYL_VOICE_MAX_SECONDS)
  var rec = { recorder: null, chunks: [], timer: null, stream: null };
  var micButton = null;

  function canRecord() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  }

  function setMic(recording) {
    micButton.setAttribute("aria-pressed", String(recording));
    micButton.setAttribute("aria-label", t(recording ? "mic_stop" : "mic_start"));
    micButton.title = t(recording ? "mic_stop" : "mic_start");
    micButton.classList.toggle("recording", recording);
  }

  function postVoice(blob, retried) {
    var data = new FormData();
    var type = (blob.type || "audio/webm").split(";")[0];
    data.append("audio", blob, "question." + (type.split("/")[1] || "webm"));
    if (state.sessionId && !retried) data.append("session_id", state.sessionId);
    data.append("language", state.lang);
    return fetch("/api/voice", { method: "POST", body: data, credentials: "same-origin",
      headers: { Accept: "application/json" } }).then(function (res) {
      return res.json().then(function (body) { return { res: res, body: body }; },
        function () { return { res: res, body: null }; });
    }, function () { throw new ApiError(0, "network"); }).then(function (r) {
      var body = r.body || {};
      if (r.res.ok && r.body) return r.body;
      if (body.code === "unknown_session" && !retried) {
        state.sessionId = null;
        addNote(t("session_expired"));
        return postVoice(blob, true);
      }
      throw new ApiError(r.res.status, body.code || "http_error", body.detail,
        Number(r.res.headers.get("Retry-After")) || body.retry_after || null);
    });
  }

  function sendRecording(blob) {
    state.started = true;
    setBusy(true);
    var typing = addTyping();
    typing.querySelector(".typing-label").textContent = t("mic_transcribing");
    return postVoice(blob, false).then(function (reply) {
      typing.remove();
      state.sessionId = reply.session_id || state.sessionId;
      var said = addUserMessage(reply.transcript);
      said.classList.add("voice");
      showReply(reply, said);
    }, function (err) {
      typing.remove();
      var voiceRefusal = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429
        && err.detail;
      addError(voiceRefusal ? t("voice_error", { detail: err.detail }) : describeError(err));
    }).then(function () { setBusy(false); });
  }

  function stopRecording() {
    if (rec.timer) clearTimeout(rec.timer);
    rec.timer = null;
    if (rec.recorder && rec.recorder.state !== "inactive") rec.recorder.stop();
  }

  function startRecording() {
    if (state.busy) return;
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      rec.stream = stream;
      rec.chunks = [];
      rec.recorder = new MediaRecorder(stream);
      rec.recorder.addEventListener("dataavailable", function (event) {
        if (event.data && event.data.size) rec.chunks.push(event.data);
      });
      rec.recorder.addEventListener("stop", function () {
        rec.stream.getTracks().forEach(function (track) { track.stop(); });
        setMic(false);
        var blob = new Blob(rec.chunks, { type: rec.recorder.mimeType || "audio/webm" });
        rec.recorder = null;
        sendRecording(blob);
      });
      rec.recorder.start();
      setMic(true);
      addNote(t("mic_recording"));
      rec.timer = setTimeout(stopRecording, MAX_RECORD_MS);
    }, function () { addError(t("mic_denied")); });
  }

  /* The microphone button, only where the browser can record (no MediaRecorder: no button at all). */
  function setupMic() {
    if (!canRecord()) return;
    micButton = el("button", { type: "button", id: "mic", class: "mic", "aria-pressed": "false" });
    micButton.append(icon(MIC));
    micButton.addEventListener("click", function () {
      if (rec.recorder) stopRecording();
      else startRecording();
    });
    sendButton.parentNode.insertBefore(micButton, sendButton);
    setMic(false);
  }

  /* Material Icons "mic" (Apache-2.0). */
  var MIC = "M12 14c1.66 0 2.99-1.34 2.99-3L15 5c0-1.66-1.34-3-3-3S9 3.34 9 5v6c0 1.66 1.34 3 3 3zm5.3-3c0 " +
    "3-2.54 5.1-5.3 5.1S6.7 14 6.7 11H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28c3.28-.48 6-3.3 6-6.72h-1.7z";

  /* The answer goes in with the log no longer busy, and only a short summary is announced. */
  function showReply(reply, asked) {
    if (asked && reply.language) asked.querySelector(".text").setAttribute("lang", reply.language);
    addBotMessage(reply);
    setBusy(false);
    announce(reply);
  }

  // --- sending --------------------------------------------------------------------------------
  function setBusy(busy) {
    state.busy = busy;
    sendButton.setAttribute("aria-disabled", String(busy));
    log.setAttribute("aria-busy", String(busy));
  }

  function ask(message, onProgress) {
    // The interface language is only a hint: the message's own language wins when it can be told.
    var payload = { message: message, language_hint: state.lang };
    if (state.sessionId) payload.session_id = state.sessionId;
    return transport.requestAnswer(payload, onProgress).catch(function (err) {
      if (err instanceof ApiError && err.code === "unknown_session" && state.sessionId) {
        state.sessionId = null; // expired: carry on in a new conversation
        addNote(t("session_expired"));
        return transport.requestAnswer({ message: message, language_hint: state.lang }, onProgress);
      }
      throw err;
    });
  }

  /* Every message (typed, example or suggestion chip) goes through here. */
  function sendMessage(text) {
    var message = String(text || "").trim();
    if (state.busy) return Promise.resolve();
    if (!message) {
      addError(t("error_empty"));
      return Promise.resolve();
    }
    state.started = true;
    setBusy(true);
    var asked = addUserMessage(message);
    var typing = addTyping();
    var progress = function (partial) { // streamed model text (stream.js); the final reply replaces it
      typing.querySelector(".typing-label").textContent = partial;
    };
    return ask(message, progress).then(function (reply) {
      state.sessionId = reply.session_id || state.sessionId;
      typing.remove();
      showReply(reply, asked);
    }, function (err) {
      typing.remove();
      addError(describeError(err));
    }).then(function () {
      setBusy(false);
    });
  }

  function updateCounter() {
    if (!counter) return;
    counter.textContent = input.value.length ? t("char_count", { count: input.value.length, max: MAX_CHARS }) : "";
  }

  function newConversation(event) {
    if (event) event.preventDefault();
    state.sessionId = null;
    state.started = false;
    renderWelcome();
    input.focus();
  }

  function init() {
    // /embed serves this same page for an iframe: a compact layout, chosen by the path.
    if (/^\/embed\/?$/.test(window.location.pathname)) document.getElementById("app").classList.add("embed");
    log = document.getElementById("log");
    form = document.getElementById("composer");
    input = document.getElementById("q");
    sendButton = document.getElementById("send");
    counter = document.getElementById("q-count");
    input.setAttribute("maxlength", String(MAX_CHARS));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (state.busy) return;
      var text = input.value;
      if (text.trim()) input.value = "";
      updateCounter();
      sendMessage(text);
      input.focus();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    input.addEventListener("input", updateCounter);
    document.getElementById("lang-toggle").addEventListener("click", toggleLanguage);
    document.getElementById("new-chat").addEventListener("click", newConversation);
    var rendered = log.dataset.rendered === "answer";
    if (rendered) {
      state.started = true;
      var kept = form.querySelector("input[name=session_id]");
      if (kept) state.sessionId = kept.value || null;
    }
    form.querySelectorAll("input[type=hidden]").forEach(function (node) { node.remove(); });
    var asked = new URLSearchParams(window.location.search).get("lang");
    var first = rendered && LANGS.indexOf(document.documentElement.lang) >= 0 && LANGS.indexOf(asked) < 0
      ? document.documentElement.lang : initialLanguage();
    loadStrings(first).then(function () { setupMic(); if (!rendered) renderWelcome(); }, function (err) {
      addError(describeError(err));
    });
  }

  window.Sibyl = { sendMessage: sendMessage, transport: transport, postJSON: postJSON, ApiError: ApiError };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
