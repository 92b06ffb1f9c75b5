/* Sibyl web chat: answers through POST /api/chat/stream (server-sent events), falling back to /api/chat.
 *
 * Loaded after chat.js; replaces window.Sibyl.transport.requestAnswer(payload, onProgress) with a
 * version that calls onProgress(partialText) for each model token and resolves to the `final` event's
 * object, which is the same object /api/chat returns. That final answer is the checked one: when the
 * streamed text failed the grounding checks it is the extractive answer (mode "extractive"), and when
 * some of its sentences were not supported by their sources it is the model text without them (mode
 * "llm-trimmed"), so the page must show the final object, never the streamed text. No build step.
 */
(function () {
  "use strict";

  var Sibyl = window.Sibyl;
  if (!Sibyl || !Sibyl.transport || !window.fetch || !window.TextDecoder || !window.ReadableStream) return;

  var plain = Sibyl.transport.requestAnswer; // POST /api/chat
  var ApiError = Sibyl.ApiError;

  /* Split an SSE text buffer into complete events; returns [events, rest]. */
  function parseEvents(buffer) {
    var events = [];
    var blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
    var rest = blocks.pop();
    blocks.forEach(function (block) {
      var name = "message";
      var data = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (data.length) events.push({ name: name, data: JSON.parse(data.join("\n")) });
    });
    return [events, rest];
  }

  function readStream(res, onProgress) {
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var text = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) throw new ApiError(0, "network"); // closed before the final event
        buffer += decoder.decode(chunk.value, { stream: true });
        var parsed = parseEvents(buffer);
        buffer = parsed[1];
        for (var i = 0; i < parsed[0].length; i++) {
          var ev = parsed[0][i];
          if (ev.name === "token") {
            text += ev.data;
            if (onProgress) onProgress(text);
          } else if (ev.name === "final") {
            reader.cancel().catch(function () {});
            // The checked answer: the page replaces the streamed text with it, whatever its mode.
            return ev.data;
          } else if (ev.name === "error") {
            throw new ApiError(500, ev.data.code || "internal_error", ev.data.detail);
          }
        }
        return pump();
      });
    }
    return pump();
  }

  function streamingRequestAnswer(payload, onProgress) {
    return fetch("/api/chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(payload),
      credentials: "same-origin",
    }).then(function (res) {
      var type = res.headers.get("Content-Type") || "";
      if (res.ok && type.indexOf("text/event-stream") === 0 && res.body) return readStream(res, onProgress);
      if (res.status === 404 || res.status === 405 || res.status === 501 || res.ok) {
        return plain(payload, onProgress); // no streaming endpoint here: the plain one
      }
      return res.json().then(function (data) { return data; }, function () { return {}; }).then(function (data) {
        var retry = Number(res.headers.get("Retry-After")) || data.retry_after || null;
        throw new ApiError(res.status, data.code || "http_error", data.detail, retry);
      });
    }, function () {
      return plain(payload, onProgress); // the stream could not start: ask the plain endpoint
    });
  }

  Sibyl.transport.requestAnswer = streamingRequestAnswer;
  Sibyl.streaming = { requestAnswer: streamingRequestAnswer, parseEvents: parseEvents };
})();
