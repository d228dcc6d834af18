/* The runs table: tick two runs to compare them (the first ticked is A). */
"use strict";
(function () {
  const picked = [];
  document.querySelectorAll("#runs-table input.pick").forEach(function (box) {
    box.checked = false;
    box.addEventListener("change", function () {
      const i = picked.indexOf(box.value);
      if (box.checked && i < 0) picked.push(box.value);
      if (!box.checked && i >= 0) picked.splice(i, 1);
      if (picked.length === 2) {
        window.location.href = "/gui/compare?a=" + encodeURIComponent(picked[0]) +
          "&b=" + encodeURIComponent(picked[1]);
      }
    });
  });
})();
