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
// The analysis settings form offers only the estimators and tests that fit the model: a
// multilevel model (three-level or CHE, or "automatic" where the data's studies report several
// effects, form[data-several]) is fitted by ML or REML and tested with z or t. The option already
// chosen is left as it is, so the server's message says why it cannot stay.
function fitSettingsChoices(form) {
  var dependence = form.querySelector("select[name=dependence]");
  if (!dependence) { return; }
  var value = dependence.value;
  var multilevel = value === "multilevel" || value === "che" || (value === "auto" && form.hasAttribute("data-several"));
  form.querySelectorAll("select[name=method] option, select[name=test] option").forEach(function (option) {
    var oneLevelOnly = option.parentElement.name === "method" ? !/^(ML|REML)$/.test(option.value) : option.value === "knha";
    option.disabled = multilevel && oneLevelOnly && !option.selected;
  });
}
document.addEventListener("change", function (event) {
  if (event.target instanceof HTMLSelectElement && event.target.name === "dependence" && event.target.form) {
    fitSettingsChoices(event.target.form);
  }
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form.settings").forEach(fitSettingsChoices);
});
