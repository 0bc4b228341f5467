// Behaviour for the portal's pages. No inline script anywhere: the Content-Security-Policy
// allows scripts from this site only. Listeners sit on the document, so content that live.js
// swaps into a page later behaves like the content it replaced.
document.addEventListener("change", function (event) {
  // A <select data-autosubmit> submits its form when the choice changes.
  var select = event.target;
  if (select instanceof HTMLSelectElement && select.hasAttribute("data-autosubmit") && select.form) {
    select.form.submit();
  }
});
document.addEventListener("submit", function (event) {
  // A <form data-confirm="..."> asks before it is sent (revoking a token, for instance).
  var form = event.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm")) {
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }
});
