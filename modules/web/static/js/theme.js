// Applies the theme saved in this browser before the page paints (a classic script in <head>).
(function () {
  try {
    var theme = localStorage.getItem("hearth.theme");
    if (theme === "auto" || theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    }
  } catch (e) {
    /* storage can be disabled: keep the server's default */
  }
})();
