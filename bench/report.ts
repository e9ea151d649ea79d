// Tables (console and Markdown) and hand-written SVG bar charts for the benchmark report.

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Right-align these columns (numbers). */
  numeric?: boolean[];
  /** Lines printed under the table. */
  notes?: string[];
}

const pad = (text: string, width: number, right: boolean): string => (right ? text.padStart(width) : text.padEnd(width));

export const tableToText = (t: Table): string => {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => pad(c, widths[i] ?? 0, t.numeric?.[i] ?? false))
      .join("  ")
      .trimEnd();
  const out = [t.title, line(t.headers), widths.map((w) => "-".repeat(w)).join("  "), ...t.rows.map(line)];
  for (const note of t.notes ?? []) out.push(`  ${note}`);
  return out.join("\n");
};

const escapeCell = (text: string): string => text.replace(/\|/g, "\\|");

export const tableToMarkdown = (t: Table, heading = "###"): string => {
  const align = t.headers.map((_, i) => (t.numeric?.[i] ? "---:" : "---"));
  const out = [
    `${heading} ${t.title}`,
    "",
    `| ${t.headers.map(escapeCell).join(" | ")} |`,
    `| ${align.join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(escapeCell).join(" | ")} |`),
  ];
  if (t.notes?.length) out.push("", ...t.notes);
  return out.join("\n");
};

// -----------------------------------------------------------------------------------------------
// SVG: grouped bars on a log scale. Each group (e.g. a rate) holds one cluster per series (e.g. a
// server); each cluster shows p50 as a solid bar and p99 as a lighter bar beside it.

export interface BarGroup {
  label: string;
  /** One entry per series, in series order; undefined = not measured. */
  values: Array<{ p50: number; p99: number } | undefined>;
}

export interface BarChart {
  title: string;
  subtitle: string;
  unit: string;
  series: Array<{ name: string; color: string }>;
  groups: BarGroup[];
}

const esc = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

const fmt = (v: number): string => (v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : String(Math.round(v)));

/** Lighter shade of a #rrggbb colour (mixes with white), for the p99 bar. */
const lighten = (hex: string, amount: number): string => {
  const n = Number.parseInt(hex.slice(1), 16);
  const mix = (c: number): number => Math.round(c + (255 - c) * amount);
  const [r, g, b] = [mix((n >> 16) & 255), mix((n >> 8) & 255), mix(n & 255)];
  return `#${((r << 16) | (g << 8) | b).toString(16).padStart(6, "0")}`;
};

export const barChartSvg = (chart: BarChart): string => {
  const values = chart.groups.flatMap((g) => g.values.flatMap((v) => (v ? [v.p50, v.p99] : []))).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...values, 1))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, lo * 10)));
  const bar = 14;
  const gap = 4;
  const clusterWidth = 2 * bar + gap;
  const clusterGap = 10;
  const clustersWidth = chart.series.length * (clusterWidth + clusterGap) - clusterGap;
  // Wide enough for the bars and for a two-line label under them.
  const groupWidth = Math.max(clustersWidth + 30, 150);
  const left = 64;
  const top = 64;
  const plotHeight = 300;
  const width = Math.max(left + chart.groups.length * groupWidth + 20, 640);
  const legendTop = top + plotHeight + 66;
  const height = legendTop + chart.series.length * 18 + 30;
  const y = (v: number): number =>
    top + plotHeight - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotHeight;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="600">${esc(chart.title)}</text>`,
    `<text x="${left}" y="44" fill="#555">${esc(chart.subtitle)}</text>`,
  );
  // Grid lines at each power of ten (log scale).
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${left}" x2="${width - 20}" y1="${yy}" y2="${yy}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#555">${fmt(v)}</text>`);
  }
  out.push(
    `<text transform="translate(16 ${top + plotHeight / 2}) rotate(-90)" text-anchor="middle" fill="#555">${esc(chart.unit)} (log scale)</text>`,
  );
  chart.groups.forEach((group, gi) => {
    const gx = left + gi * groupWidth + (groupWidth - clustersWidth) / 2;
    group.values.forEach((v, si) => {
      const series = chart.series[si];
      if (!series) return;
      const cx = gx + si * (clusterWidth + clusterGap);
      if (!v) {
        out.push(`<text x="${cx + clusterWidth / 2}" y="${top + plotHeight - 4}" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      const bars: Array<[number, string, string]> = [
        [v.p50, series.color, "p50"],
        [v.p99, lighten(series.color, 0.55), "p99"],
      ];
      bars.forEach(([value, color, label], bi) => {
        const x = cx + bi * (bar + gap);
        const yy = y(Math.max(value, lo));
        const h = top + plotHeight - yy;
        out.push(
          `<rect x="${x}" y="${yy.toFixed(1)}" width="${bar}" height="${h.toFixed(1)}" fill="${color}"><title>${esc(
            `${series.name}, ${group.label}: ${label} ${fmt(value)} ${chart.unit}`,
          )}</title></rect>`,
        );
        out.push(
          `<text x="${x + bar / 2}" y="${(yy - 4).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${fmt(value)}</text>`,
        );
      });
    });
    // "\n" in a label starts a second line.
    const lines = group.label
      .split("\n")
      .map((line, i) => `<tspan x="${gx + clustersWidth / 2}" dy="${i === 0 ? 0 : 15}">${esc(line)}</tspan>`)
      .join("");
    out.push(`<text y="${top + plotHeight + 20}" text-anchor="middle" font-weight="600">${lines}</text>`);
  });
  out.push(`<line x1="${left}" x2="${width - 20}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#888"/>`);
  // Legend: one line per series, then what solid and light mean.
  chart.series.forEach((s, i) => {
    const ly = legendTop + i * 18;
    out.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${left + 18}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push(
    `<text x="${left}" y="${legendTop + chart.series.length * 18 + 6}" fill="#555">solid bar: p50 · light bar: p99 · value labels in ${esc(chart.unit)}</text>`,
  );
  out.push("</svg>");
  return `${out.join("\n")}\n`;
};
