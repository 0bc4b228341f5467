// Behaviour for the portal's pages. No inline script anywhere: the Content-Security-Policy
// allows scripts from this site only.
document.addEventListener("DOMContentLoaded", function () {
  // A <select data-autosubmit> submits its form when the choice changes.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  });
  // A <form data-confirm="..."> asks before it is sent (revoking a token, for instance).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
});
