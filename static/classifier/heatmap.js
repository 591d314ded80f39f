// Where the model looked: the answer's class activation map (rows of 0..1) drawn over the photo,
// and its legend. One colour scale for the upload page and the admin: transparent where the photo
// says nothing, then blue, cyan and lime, colours far from the browns of coffee and wood.
"use strict";

const Heatmap = {
  // [value, red, green, blue, opacity]; between two stops colours are interpolated.
  STOPS: [
    [0.0, 40, 90, 255, 0],
    [0.4, 40, 110, 255, 0.15],
    [0.7, 0, 225, 255, 0.6],
    [1.0, 200, 255, 40, 0.85],
  ],

  colour(value) {
    const stops = Heatmap.STOPS;
    const clamped = Math.min(1, Math.max(0, value));
    const upper = stops.findIndex((stop) => stop[0] >= clamped);
    const [low, high] = upper <= 0 ? [stops[0], stops[0]] : [stops[upper - 1], stops[upper]];
    const share = high[0] === low[0] ? 0 : (clamped - low[0]) / (high[0] - low[0]);
    const mix = (index) => low[index] + (high[index] - low[index]) * share;
    return [Math.round(mix(1)), Math.round(mix(2)), Math.round(mix(3)), Math.round(255 * mix(4))];
  },

  // Draws `grid` on `canvas` (one canvas pixel per cell; CSS stretches it over the photo).
  draw(canvas, grid) {
    if (!grid || !grid.length) return false;
    const rows = grid.length, columns = grid[0].length;
    canvas.width = columns;
    canvas.height = rows;
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(columns, rows);
    grid.flat().forEach((value, index) => pixels.data.set(Heatmap.colour(value), index * 4));
    context.putImageData(pixels, 0, 0);
    return true;
  },

  // The scale from "nothing" to "most", over coffee brown, as it shows on a photo.
  legend(canvas) {
    const width = 100;
    canvas.width = width;
    canvas.height = 1;
    const context = canvas.getContext("2d");
    context.fillStyle = "#6f4e37";
    context.fillRect(0, 0, width, 1);
    const overlay = document.createElement("canvas");
    Heatmap.draw(overlay, [Array.from({ length: width }, (_, index) => index / (width - 1))]);
    context.drawImage(overlay, 0, 0);
  },
};

// Canvases marked data-heatmap (a json_script id) or data-heatmap-legend draw themselves; a
// checkbox marked data-heatmap-toggle shows or hides the heatmaps of its figure.
document.addEventListener("DOMContentLoaded", () => {
  for (const toggle of document.querySelectorAll("input[data-heatmap-toggle]")) {
    toggle.addEventListener("change", () => {
      for (const canvas of toggle.closest("figure").querySelectorAll("canvas[data-heatmap]")) {
        canvas.hidden = !toggle.checked;
      }
    });
  }
  for (const canvas of document.querySelectorAll("canvas[data-heatmap]")) {
    Heatmap.draw(canvas, JSON.parse(document.getElementById(canvas.dataset.heatmap).textContent));
  }
  for (const canvas of document.querySelectorAll("canvas[data-heatmap-legend]")) Heatmap.legend(canvas);
});
