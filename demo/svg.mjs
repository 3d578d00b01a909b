// A picture of which patches merged: the generated image's patch grid, once as it is and once per
// merge run, each merged group (a merged token holding 2+ patches) tinted with its own colour and
// outlined. Plain SVG text, no dependency; written atomically (temp name + rename).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const hex = (v) => Math.round(Math.min(1, Math.max(0, v)) * 255).toString(16).padStart(2, '0');

/** The picture as runs of equal colour in blocks of `block` pixels: few rects for flat regions. */
function pictureRects(px, size, block) {
  const cells = size / block;
  const rects = [];
  for (let by = 0; by < cells; by++) {
    let run = null;
    for (let bx = 0; bx <= cells; bx++) {
      let colour = null;
      if (bx < cells) {
        const sum = [0, 0, 0];
        for (let y = 0; y < block; y++) for (let x = 0; x < block; x++) {
          for (let c = 0; c < 3; c++) sum[c] += px[((by * block + y) * size + bx * block + x) * 3 + c];
        }
        colour = '#' + sum.map((s) => hex(s / (block * block))).join('');
      }
      if (run && run.colour === colour) { run.width += block; continue; }
      if (run) rects.push(`<rect x="${run.x}" y="${by * block}" width="${run.width}" height="${block}" fill="${run.colour}"/>`);
      run = colour ? { x: bx * block, width: block, colour } : null;
    }
  }
  return rects.join('');
}

/** One panel's overlay: merged groups tinted (golden-angle hues), borders drawn between groups. */
function overlay(owner, grid, cell) {
  const members = new Map();
  for (const o of owner) members.set(o, (members.get(o) ?? 0) + 1);
  const hue = new Map();
  for (const [o, n] of [...members].sort((a, b) => b[1] - a[1] || a[0] - b[0])) if (n >= 2) hue.set(o, (hue.size * 137.508) % 360);
  const parts = [];
  for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) {
    const o = owner[y * grid + x];
    const at = `x="${x * cell}" y="${y * cell}" width="${cell}" height="${cell}"`;
    // Unmerged patches are faded, so that the merged groups stand out.
    parts.push(hue.has(o) ? `<rect ${at} fill="hsl(${hue.get(o).toFixed(0)},75%,50%)" fill-opacity="0.55"/>` : `<rect ${at} fill="#fff" fill-opacity="0.6"/>`);
  }
  // Outlines around merged groups only: two unmerged neighbours get no line between them.
  const edge = (a, b) => a !== b && (hue.has(a) || hue.has(b));
  for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) {
    const o = owner[y * grid + x];
    if (x + 1 < grid && edge(owner[y * grid + x + 1], o)) parts.push(`<line x1="${(x + 1) * cell}" y1="${y * cell}" x2="${(x + 1) * cell}" y2="${(y + 1) * cell}"/>`);
    if (y + 1 < grid && edge(owner[(y + 1) * grid + x], o)) parts.push(`<line x1="${x * cell}" y1="${(y + 1) * cell}" x2="${(x + 1) * cell}" y2="${(y + 1) * cell}"/>`);
  }
  return parts.join('');
}

/**
 * The SVG text: `panels` are { title, owner } where owner[patch] is the merged token holding that
 * patch (from mk.mergeSource), or owner undefined for the picture itself.
 */
export function mergeMapSvg(px, size, grid, panels) {
  const cell = size / grid, gap = 16, top = 22;
  const width = panels.length * size + (panels.length + 1) * gap, height = size + top + gap;
  const body = panels.map((p, i) => {
    const x0 = gap + i * (size + gap);
    return `<g transform="translate(${x0},${top})"><use xlink:href="#picture"/>${p.owner ? `<g stroke="#000" stroke-width="1.5">${overlay(p.owner, grid, cell)}</g>` : ''}</g>`
      + `<text x="${x0}" y="${top - 7}">${p.title}</text>`;
  }).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">
<title>merge-kernels demo: which patches merged</title>
<defs><g id="picture">${pictureRects(px, size, 4)}</g></defs>
<rect width="100%" height="100%" fill="#fff"/>
${body}
</svg>
`;
}

/** Writes `text` to `path` complete or not at all: a temporary name in the same folder, then rename. */
export function writeAtomic(path, text) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
