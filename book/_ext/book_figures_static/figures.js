// Enlarge a figure on a click (book/_ext/book_figures.py): the figure fills the window, at most at
// the PNG's own resolution and at least at the width that keeps its text readable (its min-width),
// so a phone pans across it. Escape, a click or the close button shut it. No dependencies, offline.
(function () {
  "use strict";
  var FIGURES = "img.hw2-figure";

  function enlargedWidth(figure) {
    var readable = parseFloat(getComputedStyle(figure).minWidth) || 0;
    var fitWidth = window.innerWidth * 0.96;
    var fitHeight = window.innerHeight * 0.94 * figure.naturalWidth / Math.max(figure.naturalHeight, 1);
    return Math.max(readable, Math.min(figure.naturalWidth, fitWidth, fitHeight));
  }

  function open(figure) {
    var overlay = document.createElement("div");
    overlay.className = "hw2-lightbox";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "enlarged figure");
    var image = document.createElement("img");
    image.src = figure.currentSrc || figure.src;
    image.alt = figure.alt;
    image.style.width = enlargedWidth(figure) + "px";
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "close");
    close.textContent = "\u00d7";
    overlay.appendChild(image);
    overlay.appendChild(close);

    function shut() {
      document.removeEventListener("keydown", onKey, true);
      overlay.remove();
      document.documentElement.style.overflow = "";
      figure.focus();
    }
    function onKey(event) {
      if (event.key === "Escape") { event.preventDefault(); shut(); }
    }
    overlay.addEventListener("click", shut);
    document.addEventListener("keydown", onKey, true);
    document.documentElement.style.overflow = "hidden";
    document.body.appendChild(overlay);
    close.focus();
  }

  // A figure kept at its readable width on a narrow screen says that it scrolls.
  function markScrolling() {
    document.querySelectorAll(".hw2-figure-box").forEach(function (box) {
      box.classList.toggle("hw2-scrolls", box.scrollWidth > box.clientWidth + 1);
    });
  }

  function prepare() {
    document.querySelectorAll(FIGURES).forEach(function (figure) {
      figure.tabIndex = 0;
      figure.setAttribute("role", "button");
      figure.setAttribute("aria-label", "enlarge figure");
      if (!figure.complete) figure.addEventListener("load", markScrolling);
    });
    markScrolling();
    window.addEventListener("resize", markScrolling);
  }

  document.addEventListener("click", function (event) {
    var figure = event.target.closest && event.target.closest(FIGURES);
    if (figure) { event.preventDefault(); open(figure); }
  });
  document.addEventListener("keydown", function (event) {
    var figure = event.target.matches && event.target.matches(FIGURES) ? event.target : null;
    if (figure && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); open(figure); }
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", prepare);
  else prepare();
})();
