// The HIT page: keyboard shortcuts and time on each sample. No framework; htmx does the requests.
//
// Keys: 1-4 rate, ArrowRight/ArrowLeft move, m/M the first un-marked sample in order (or the Submit
// button once everything is marked). Keys pressed while a request is running wait their
// turn, so fast typing acts on the sample that is on screen by then.
(function () {
  "use strict";

  const hit = document.getElementById("hit");
  if (!hit) return;
  const hitId = hit.dataset.hit;
  const timeUrl = hit.dataset.timeUrl;

  // --- time on screen -------------------------------------------------------------
  // Milliseconds are kept per sample until they can be stored: with the rating click,
  // or (for a sample already rated) through the time endpoint when the sample is left.
  let shownAt = performance.now();
  let shownPosition = currentPosition();

  function currentPosition() {
    const sample = document.getElementById("sample");
    return sample ? sample.dataset.position : null;
  }
  function currentSampleMarked() {
    const sample = document.getElementById("sample");
    return !!sample && sample.dataset.marked === "1";
  }
  function pendingKey(position) {
    return "arbiter-ms-" + hitId + "-" + position;
  }
  function pendingMs(position) {
    return parseInt(sessionStorage.getItem(pendingKey(position)) || "0", 10);
  }
  function visitMs() {
    const ms = Math.round(performance.now() - shownAt);
    shownAt = performance.now();
    return ms;
  }
  // All unsent time for the sample on screen; the caller sends it.
  function takeElapsed(position) {
    const ms = pendingMs(position) + visitMs();
    sessionStorage.removeItem(pendingKey(position));
    return ms;
  }
  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  // The sample on screen is being left (navigation, tab hidden or closed).
  function leaveSample() {
    const position = shownPosition;
    if (position === null) return;
    if (currentSampleMarked()) {
      const body = new FormData();
      body.append("position", position);
      body.append("elapsed_ms", takeElapsed(position));
      fetch(timeUrl, { method: "POST", body: body, keepalive: true, headers: { "X-CSRFToken": csrfToken() } });
    } else {
      sessionStorage.setItem(pendingKey(position), pendingMs(position) + visitMs());
    }
  }

  document.body.addEventListener("htmx:configRequest", function (event) {
    const elt = event.detail.elt;
    if (event.detail.verb === "post" && elt.matches("#sample form")) {
      event.detail.parameters["elapsed_ms"] = takeElapsed(shownPosition);
    } else if (event.detail.verb === "get" && elt.closest("#sample")) {
      leaveSample();
    }
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    const position = currentPosition();
    if (position !== shownPosition) {
      shownPosition = position;
      shownAt = performance.now();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") leaveSample();
    else shownAt = performance.now();
  });

  // --- keyboard -------------------------------------------------------------------
  const queuedKeys = [];
  let requestsRunning = 0;

  function actionFor(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return null;
    const target = event.target;
    if (target.matches && target.matches("textarea, select, input:not([type=radio])")) return null;
    if (/^[1-4]$/.test(event.key)) return "rate" + event.key;
    if (event.key === "ArrowRight") return "next";
    if (event.key === "ArrowLeft") return "previous";
    if (event.key === "m" || event.key === "M") return "unmarked";
    return null;
  }

  function perform(action) {
    const sample = document.getElementById("sample");
    if (!sample) return;
    if (action.startsWith("rate")) {
      const radio = sample.querySelector("input[name=rating][data-key='" + action.slice(4) + "']");
      if (radio && !radio.checked) radio.click();
      return;
    }
    const button = sample.querySelector("button[data-nav=" + action + "]");
    if (button && !button.disabled) {
      button.click();
    } else if (action === "unmarked") {
      const submit = document.getElementById("submit-hit");
      if (submit && !submit.disabled) submit.focus();
    }
  }

  function drain() {
    while (requestsRunning === 0 && queuedKeys.length > 0) perform(queuedKeys.shift());
  }

  document.addEventListener("keydown", function (event) {
    const action = actionFor(event);
    if (action === null) return;
    // Also stops the browser moving a focused radio button with the arrow keys.
    event.preventDefault();
    queuedKeys.push(action);
    drain();
  });
  document.body.addEventListener("htmx:beforeRequest", function () {
    requestsRunning += 1;
  });
  document.body.addEventListener("htmx:afterRequest", function () {
    requestsRunning = Math.max(0, requestsRunning - 1);
    // The swap is done by now; let htmx finish its bookkeeping first.
    setTimeout(drain, 0);
  });
  // New content gets its htmx behaviour when it settles; keys waiting for it go then.
  document.body.addEventListener("htmx:load", function () {
    setTimeout(drain, 0);
  });
})();
