// Operator console: copy buttons, confirm on remove, polling of a running indexing job. No inline scripts (CSP).
(function () {
  "use strict";
  const body = document.body;

  function status(button, ok) {
    const span = button.parentElement.querySelector(".copy-status");
    if (span) span.textContent = ok ? body.dataset.copied : body.dataset.copyFailed;
  }

  function fallbackCopy(textarea) {
    textarea.focus();
    textarea.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      const area = document.getElementById(button.dataset.copy);
      const text = area.value;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { status(button, true); },
          function () { status(button, fallbackCopy(area)); });
      } else {
        status(button, fallbackCopy(area));
      }
    });
  });

  document.querySelectorAll("button.copy-html").forEach(function (button) {
    button.addEventListener("click", function () {
      const box = document.getElementById(button.dataset.copyHtml);
      const html = box.innerHTML, text = box.innerText;
      if (navigator.clipboard && window.ClipboardItem && window.isSecureContext) {
        const item = new ClipboardItem({
          "text/html": new Blob([html], { type: "text/html" }),
          "text/plain": new Blob([text], { type: "text/plain" }),
        });
        navigator.clipboard.write([item]).then(function () { status(button, true); },
          function () { status(button, false); });
      } else {
        const range = document.createRange();
        range.selectNodeContents(box);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        let ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        status(button, ok);
      }
    });
  });

  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  const job = document.getElementById("job");
  if (job && job.dataset.state === "running") {
    const poll = function () {
      fetch(location.pathname.replace(/\/documenti.*$/, "/documenti/lavori/") + job.dataset.job,
            { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.state === "running") {
            const p = data.progress || {};
            if (data.waiting) job.textContent = job.dataset.waiting;
            else if (p.total > 0) job.textContent = job.dataset.progress.replace("{done}", p.done)
              .replace("{total}", p.total).replace("{eta}", p.eta);
            setTimeout(poll, 1000);
            return;
          }
          job.dataset.state = data.state;
          job.className = "job job-" + data.state;
          // reload the list so the new generation's documents show
          window.location.href = location.pathname.replace(/\/documenti.*$/, "/documenti");
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 1000);
  }
})();
