// The HIT page: keyboard shortcuts and time on each sample. No framework; htmx does the requests.
//
// Keys: 1-4 rate, ArrowRight/ArrowLeft move, m/M the first un-marked sample in order (or the Submit
// button once everything is marked). Keys pressed while a request is running wait their
// turn, so fast typing acts on the sample that is on screen by then.
//
// Ranking samples (#sample[data-kind=ranking]) take, instead of 1-4: the letters a-i / A-I (rank that
// response next), "=" then a letter (tie it with the previous one, where the batch allows ties),
// Backspace (undo the last letter) and Escape (clear). M is not a response letter (at most 9: A-I),
// so M and the arrows keep their meaning. Dragging the letter chips (SortableJS) or clicking one in
// "Not ranked yet" does the same. Each change posts the whole order so far as screen tiers; the
// server's answer re-draws the sample, and the next key reads the order from it.
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
  // The sample on screen is being left (navigation, tab hidden or closed): its time waits in sessionStorage, to go
  // with its next rating, or (for a rated sample) with the submit, or the time endpoint once the page is hidden. Not
  // a request per move: a judgment costs one request, its rating (the next sample comes with it).
  function leaveSample() {
    const position = shownPosition;
    if (position === null) return;
    sessionStorage.setItem(pendingKey(position), pendingMs(position) + visitMs());
  }
  // Time waiting for rated samples: one keepalive POST each (unrated ones keep it for their rating).
  function sendWaitingTimes() {
    document.querySelectorAll("#sample .dot.marked").forEach(function (dot) {
      const position = new URL(dot.href, location.href).searchParams.get("sample");
      const ms = pendingMs(position);
      if (!position || ms <= 0) return;
      sessionStorage.removeItem(pendingKey(position));
      const body = new FormData();
      body.append("position", position);
      body.append("elapsed_ms", ms);
      fetch(timeUrl, { method: "POST", body: body, keepalive: true, headers: { "X-CSRFToken": csrfToken() } });
    });
  }
  // Submitting: the waiting times go with the submit itself, as elapsed_ms_<position> fields.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.matches(".submit-form")) return;
    leaveSample();
    document.querySelectorAll("#sample .dot").forEach(function (dot) {
      const position = new URL(dot.href, location.href).searchParams.get("sample");
      const ms = pendingMs(position);
      if (!position || ms <= 0) return;
      sessionStorage.removeItem(pendingKey(position));
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "elapsed_ms_" + position;
      field.value = ms;
      form.appendChild(field);
    });
  });

  // Moving to the sample that came with the last rating (the prefetched template): shown at once, no request.
  function prefetchedFor(elt) {
    const template = document.getElementById("prefetched-sample");
    const url = elt.getAttribute("hx-get") || "";
    const wanted = new URL(url, location.href).searchParams.get("sample");
    if (!template || !template.dataset.position || template.dataset.position !== wanted) return null;
    return { template: template, url: url };
  }
  function showPrefetched(found) {
    const fresh = found.template.content.firstElementChild.cloneNode(true);
    found.template.removeAttribute("data-position");
    found.template.content.replaceChildren();
    document.getElementById("sample").replaceWith(fresh);
    history.pushState({}, "", found.url);
    htmx.process(fresh);
    shownPosition = currentPosition();
    shownAt = performance.now();
    tiePending = false;
    makeSortable(fresh);
  }
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    const elt = event.detail.elt;
    if (event.detail.requestConfig.verb !== "get" || !elt.closest("#sample")) return;
    const found = prefetchedFor(elt);
    if (found === null) return;
    event.preventDefault(); // no request: the sample is here already
    showPrefetched(found);
    setTimeout(drain, 0);
  });

  document.body.addEventListener("htmx:configRequest", function (event) {
    const elt = event.detail.elt;
    if (event.detail.verb === "post" && elt.matches("#sample form")) {
      // A partial order of an unmarked ranking sample has no judgment to hold time yet: the time keeps counting
      // and goes with the order that completes it.
      event.detail.parameters["elapsed_ms"] = elt.dataset.keepTime === "1" ? 0 : takeElapsed(shownPosition);
    } else if (event.detail.verb === "get" && elt.closest("#sample")) {
      leaveSample();
    }
  });
  // A ranking change re-draws the sample: each response box keeps how far it was scrolled.
  let keptScroll = null;
  document.body.addEventListener("htmx:beforeSwap", function () {
    keptScroll = { position: currentPosition(), tops: {} };
    document.querySelectorAll("#sample .response-body").forEach(function (box) {
      keptScroll.tops[box.id] = box.scrollTop;
    });
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    const position = currentPosition();
    if (keptScroll && keptScroll.position === position) {
      Object.keys(keptScroll.tops).forEach(function (id) {
        const box = document.getElementById(id);
        if (box) box.scrollTop = keptScroll.tops[id];
      });
    }
    if (position !== shownPosition) {
      shownPosition = position;
      shownAt = performance.now();
      tiePending = false;
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      leaveSample();
      sendWaitingTimes();
    } else {
      shownAt = performance.now();
    }
  });

  // --- keyboard -------------------------------------------------------------------
  const queuedKeys = [];
  let requestsRunning = 0;

  function actionFor(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return null;
    const target = event.target;
    if (target.matches && target.matches("textarea, select, input:not([type=radio])")) return null;
    if (document.querySelector("#sample[data-kind=ranking]")) {
      if (/^[a-iA-I]$/.test(event.key)) return "rank:letter:" + event.key.toUpperCase();
      if (event.key === "=") return "rank:tie";
      if (event.key === "Backspace") return "rank:undo";
      if (event.key === "Escape") return "rank:clear";
    }
    if (/^[1-4]$/.test(event.key)) return "rate" + event.key;
    if (event.key === "ArrowRight") return "next";
    if (event.key === "ArrowLeft") return "previous";
    if (event.key === "m" || event.key === "M") return "unmarked";
    return null;
  }

  function perform(action) {
    const sample = document.getElementById("sample");
    if (!sample) return;
    if (action.startsWith("rank:")) {
      performRanking(sample, action.slice(5));
      return;
    }
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

  // --- ranking ---------------------------------------------------------------------
  const LETTERS = "ABCDEFGHI";
  let tiePending = false;

  function say(sample, message) {
    const line = sample.querySelector("#ranking-error");
    if (!line) return;
    line.textContent = message;
    line.hidden = !message;
  }
  function showTiePending(sample) {
    const note = sample.querySelector("#tie-pending");
    if (note) note.hidden = !tiePending;
  }
  function sameTiers(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }
  function sendOrder(sample, tiers) {
    const form = sample.querySelector("form.rank-form");
    if (!form) return;
    form.querySelector("input[name=ranking]").value = JSON.stringify(tiers);
    const listed = tiers.reduce(function (count, tier) { return count + tier.length; }, 0);
    const size = parseInt(sample.querySelector("#ranking").dataset.size, 10);
    form.dataset.keepTime = !currentSampleMarked() && listed < size - 1 ? "1" : "0";
    form.requestSubmit();
  }

  function performRanking(sample, what) {
    const panel = sample.querySelector("#ranking");
    if (!panel) return;
    const size = parseInt(panel.dataset.size, 10);
    const tiers = JSON.parse(panel.dataset.tiers);
    // The response that completed the order by being left over was never typed: undo, ties and typing act
    // on the letters typed, so Backspace on "B A D C" (C left over) gives "B A".
    const typed = tiers.map(function (tier) { return tier.slice(); });
    if (panel.dataset.complete === "1" && typed.length > 0 && typed[typed.length - 1].length === 1) typed.pop();
    say(sample, "");
    if (what.startsWith("order:")) {
      const dragged = JSON.parse(what.slice(6));
      tiePending = false;
      if (!sameTiers(dragged, tiers)) sendOrder(sample, dragged);
    } else if (what.startsWith("letter:")) {
      const letter = what.slice(7);
      const position = LETTERS.indexOf(letter) + 1;
      if (position < 1 || position > size) {
        say(sample, "There is no response " + letter + " here: the letters are A to " + LETTERS[size - 1] + ".");
        return;
      }
      const tie = tiePending && typed.length > 0;
      tiePending = false;
      showTiePending(sample);
      if (typed.some(function (tier) { return tier.indexOf(position) >= 0; })) {
        say(sample, letter + " is ranked already: Backspace undoes the last letter, Escape clears the order.");
        return;
      }
      if (tie) typed[typed.length - 1].push(position);
      else typed.push([position]);
      if (!sameTiers(typed, tiers)) sendOrder(sample, typed);
    } else if (what === "tie") {
      if (panel.dataset.allowTies !== "1") {
        say(sample, "Ties are not allowed in this batch: rank every response in its own place.");
      } else if (typed.length === 0) {
        say(sample, "Type a letter first; = then another letter ties that one with it.");
      } else {
        tiePending = true;
        showTiePending(sample);
      }
    } else if (what === "undo") {
      if (tiePending) {
        tiePending = false;
        showTiePending(sample);
        return;
      }
      if (typed.length === 0) return;
      typed[typed.length - 1].pop();
      if (typed[typed.length - 1].length === 0) typed.pop();
      sendOrder(sample, typed);
    } else if (what === "clear") {
      tiePending = false;
      showTiePending(sample);
      if (tiers.length > 0) sendOrder(sample, []);
    }
  }

  function queueAction(action) {
    queuedKeys.push(action);
    drain();
  }

  // Mouse: a letter in "Not ranked yet" ranks it next; the undo and clear buttons do what their keys do.
  document.addEventListener("click", function (event) {
    const target = event.target.closest ? event.target : null;
    if (!target) return;
    const letter = target.closest("#ranking [data-letter]");
    const button = target.closest("#ranking [data-rank-action]");
    if (letter) queueAction("rank:letter:" + letter.dataset.letter);
    else if (button && !button.disabled) queueAction("rank:" + button.dataset.rankAction);
  });

  // Drag and drop: the chips of "Best first" and "Not ranked yet" form one group; after a drop the new order
  // is what "Best first" holds (a chip of tied letters moves as one place).
  function dropped() {
    const order = document.getElementById("rank-order");
    if (!order) return;
    const tiers = Array.prototype.map.call(order.children, function (chip) { return JSON.parse(chip.dataset.tier); });
    queueAction("rank:order:" + JSON.stringify(tiers));
  }
  function makeSortable(root) {
    if (typeof Sortable === "undefined" || !root.querySelectorAll) return;
    const lists = root.querySelectorAll("#rank-order, #rank-pool");
    lists.forEach(function (list) {
      // Pointer events rather than native drag and drop: the same in every browser, and testable.
      Sortable.create(list, { group: "ranking", animation: 0, forceFallback: true, fallbackTolerance: 4, onEnd: dropped });
    });
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
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (!event.defaultPrevented) requestsRunning += 1; // a move to the prefetched sample sends nothing
  });
  document.body.addEventListener("htmx:afterRequest", function () {
    requestsRunning = Math.max(0, requestsRunning - 1);
    // The swap is done by now; let htmx finish its bookkeeping first.
    setTimeout(drain, 0);
  });
  // New content gets its htmx behaviour when it settles; keys waiting for it go then.
  document.body.addEventListener("htmx:load", function (event) {
    makeSortable(event.target);
    setTimeout(drain, 0);
  });
})();
