/**
 * A minimal Prometheus text-format writer. The sim renders vLLM's and TGI's metric families
 * exactly as those engines' exporters name them (vLLM uses Python's prometheus_client, which
 * exposes a counter `x` as the sample `x_total`; TGI's Rust exporter does not add `_total`),
 * and records one observation per generated token, so it stays cheaper than a general
 * client library: a histogram observation is a bucket search and two additions.
 */
type Labels = Readonly<Record<string, string>>;

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function labelString(labels: Labels, extra?: string): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

const fmt = (n: number): string => (Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN");

interface Family {
  render(): string;
}

export class Counter implements Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly base: Labels,
    /** Python's client exposes counter samples as `<name>_total`. */
    private readonly sampleSuffix = "_total",
  ) {}

  /** A bound child: `inc` without re-hashing labels on the hot path. */
  child(labels: Labels = {}): { inc(n?: number): void } {
    const all = { ...this.base, ...labels };
    const key = labelString(all);
    let cell = this.values.get(key);
    if (cell === undefined) {
      cell = { labels: all, value: 0 };
      this.values.set(key, cell);
    }
    const c = cell;
    return {
      inc(n = 1) {
        c.value += n;
      },
    };
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const { labels, value } of this.values.values()) out += `${this.name}${this.sampleSuffix}${labelString(labels)} ${fmt(value)}\n`;
    return out;
  }
}

/** A gauge whose value is read at scrape time. */
export class Gauge implements Family {
  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly base: Labels,
    private readonly read: () => number,
  ) {}
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name}${labelString(this.base)} ${fmt(this.read())}\n`;
  }
}

export class Histogram implements Family {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly base: Labels,
    private readonly buckets: readonly number[],
  ) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  /** Records `value` `times` times (a batch of equal observations, e.g. a catch-up of tokens). */
  observe(value: number, times = 1): void {
    if (times <= 0) return;
    this.sum += value * times;
    this.count += times;
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    if (i < b.length) this.counts[i] = (this.counts[i] ?? 0) + times;
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += this.counts[i] ?? 0;
      out += `${this.name}_bucket${labelString(this.base, `le="${fmt(le)}"`)} ${cumulative}\n`;
    });
    out += `${this.name}_bucket${labelString(this.base, 'le="+Inf"')} ${this.count}\n`;
    out += `${this.name}_count${labelString(this.base)} ${this.count}\n`;
    out += `${this.name}_sum${labelString(this.base)} ${fmt(this.sum)}\n`;
    return out;
  }
}

export class Exposition {
  private readonly families: Family[] = [];
  add<F extends Family>(family: F): F {
    this.families.push(family);
    return family;
  }
  render(): string {
    return this.families.map((f) => f.render()).join("");
  }
}
