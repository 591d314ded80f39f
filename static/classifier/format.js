// How numbers and labels read, the rules of classifier/templatetags/classifier_format.py with the
// same arithmetic: the page and the admin show one figure the same way, before and after a reload.
"use strict";

const Format = {
  DASH: "–",

  // A share in tenths of a percent; "100 %" and "0 %" only for exactly 1 and 0.
  percent(value) {
    if (value === null || value === undefined) return Format.DASH;
    if (value === 0 || value === 1) return `${value * 100} %`;
    const tenths = Math.floor(value * 1000 + 0.5);
    if (tenths >= 1000 && value < 1) return "> 99.9 %";
    if (tenths <= 0 && value > 0) return "< 0.1 %";
    return `${Math.floor(tenths / 10)}.${tenths % 10} %`;
  },

  // A label as a person reads it: "not_coffee" → "not coffee".
  label(name) {
    return String(name ?? "").replaceAll("_", " ");
  },

  // A duration in ms: one decimal below 10 ms, whole ms with thousands separated above.
  milliseconds(value) {
    if (value === null || value === undefined) return Format.DASH;
    if (value < 10) {
      const tenths = Math.floor(value * 10 + 0.5);
      return `${Math.floor(tenths / 10)}.${tenths % 10} ms`;
    }
    return `${String(Math.floor(value + 0.5)).replace(/\B(?=(\d{3})+(?!\d))/g, " ")} ms`;
  },
};
