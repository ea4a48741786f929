// o4o dashboard live updates. The Server-Sent Events stream (/events) only says *that*
// something changed (keys and revisions); the page then refetches its own fragment, which
// the server renders with escaping, and swaps it in. Without JavaScript the pages still work:
// this file only adds liveness. No framework, no build step, no inline script (CSP).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) {
    return;
  }
  var indicator = document.getElementById("live-indicator");
  var banner = document.getElementById("stale-banner");
  var staleSince = document.getElementById("stale-since");
  var region = document.querySelector("[data-live]");
  var revision = region ? Number(region.getAttribute("data-revision")) || 0 : 0;
  var boot = region ? region.getAttribute("data-boot") : null;
  var fetching = false;
  var fetchAgain = false;

  function setIndicator(state) {
    if (indicator) {
      indicator.setAttribute("data-state", state);
    }
  }

  function humanTime(isoText) {
    return isoText ? isoText.replace("T", " ").replace("Z", " UTC") : "";
  }

  function showStatus(status) {
    if (!banner) {
      return;
    }
    banner.hidden = !status.stale;
    if (staleSince) {
      staleSince.textContent = humanTime(status.staleSince);
      staleSince.setAttribute("datetime", status.staleSince || "");
    }
  }

  function concernsThisPage(change) {
    if (!region) {
      return false;
    }
    var live = region.getAttribute("data-live");
    if (live === "list") {
      return change.kind === "instance";
    }
    if (live === "fleets") {
      return change.kind === "fleet";
    }
    if (live === "fleet") {
      // The fleet itself, or any instance of its namespace (its members live there).
      return (change.kind === "fleet" && change.key === region.getAttribute("data-key")) ||
        (change.kind === "instance" && change.key.indexOf(region.getAttribute("data-namespace") + "/") === 0);
    }
    return change.kind !== "fleet" && change.key === region.getAttribute("data-key");
  }

  function swapIn(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    region.replaceChildren(template.content);
    var marker = region.querySelector("[data-revision]");
    if (marker) {
      revision = Math.max(revision, Number(marker.getAttribute("data-revision")) || 0);
    }
    region.setAttribute("data-revision", String(revision));
  }

  function refresh() {
    if (!region) {
      return;
    }
    if (fetching) {
      fetchAgain = true;
      return;
    }
    fetching = true;
    fetch(region.getAttribute("data-fragment"), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        return response.ok || response.status === 404 ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          swapIn(html);
        }
      })
      .catch(function () {
        // The dashboard itself is unreachable; the stream reconnects and says hello again.
      })
      .finally(function () {
        fetching = false;
        if (fetchAgain) {
          fetchAgain = false;
          refresh();
        }
      });
  }

  var source = new EventSource("/events");
  source.addEventListener("open", function () {
    setIndicator("on");
  });
  source.addEventListener("error", function () {
    setIndicator("off");
  });
  source.addEventListener("hello", function (event) {
    var status = JSON.parse(event.data);
    showStatus(status);
    if (status.boot !== boot) {
      boot = status.boot; // a restarted dashboard: its revisions start over
      revision = 0;
    }
    if (status.revision > revision) {
      refresh(); // changes between rendering the page and connecting the stream
    }
  });
  source.addEventListener("status", function (event) {
    showStatus(JSON.parse(event.data));
  });
  source.addEventListener("change", function (event) {
    var change = JSON.parse(event.data);
    if (change.revision > revision && concernsThisPage(change)) {
      refresh();
    }
  });
})();
