/**
 * The simulated engine core: admission up to max-num-seqs, a bounded waiting queue, the
 * prefix cache, KV accounting, and token timing. One scheduler drives every sequence: a
 * min-heap of "next token due" times and a single timer, so thousands of concurrent streams
 * cost one timer, and a tick writes each due stream's tokens in one go (all of them at once
 * when the latencies are 0).
 */
import type { LatencyModel } from "./latency.ts";
import type { EngineObserver } from "./metrics.ts";
import { createPrefixCache } from "./prefix-cache.ts";
import { DueHeap } from "./heap.ts";

export interface JobTiming {
  queueMs: number;
  /** Admission to the last token. */
  inferenceMs: number;
  ttftMs: number;
}

export interface GenerationJob {
  /** Tokens each sequence (choice) will generate; the request holds `lengths.length` sequences. */
  lengths: readonly number[];
  /** Finish reason per sequence, for vllm:request_success_total. */
  finishReasons: readonly string[];
  promptTokenIds: readonly number[];
  streaming: boolean;
  /** Stop advancing after this many steps (fault "stall"): the request keeps its slot until cancelled. */
  stallAtStep?: number;
  /** Streaming: steps [from, to) are due; write them. */
  onTokens?(from: number, to: number, now: number): void;
  /** Every step is done. */
  onFinish(timing: JobTiming): void;
  /** The job reached `stallAtStep` (may be called from inside submit()). */
  onStall?(): void;
}

export interface Ticket {
  /** The client went away: stop generating and free the slot (counted as aborted). */
  cancel(): void;
}

export interface EngineStats {
  admitted: number;
  completed: number;
  aborted: number;
  rejected: number;
  promptTokens: number;
  completionTokens: number;
  /** Tokens of the requests that finished (not aborted): what a client can have been billed for. */
  completedPromptTokens: number;
  completedCompletionTokens: number;
}

export interface EngineOptions {
  latency: LatencyModel;
  maxNumSeqs: number;
  maxWaiting: number;
  kvCapacityTokens: number;
  observer: EngineObserver;
  /** Milliseconds, monotonic. */
  clock?: () => number;
}

export interface Engine {
  /** Queues a job; null when the waiting queue is full (the caller answers "overloaded"). */
  submit(job: GenerationJob): Ticket | null;
  readonly running: number;
  readonly waiting: number;
  readonly kvUsage: number;
  readonly stats: Readonly<EngineStats>;
  stop(): void;
}

type State = "waiting" | "running" | "stalled" | "done" | "cancelled";

interface Entry {
  job: GenerationJob;
  slots: number;
  steps: number;
  state: State;
  arrivalAt: number;
  admittedAt: number;
  firstAt: number;
  lastAt: number;
  step: number;
  dueAt: number;
  held: number;
}

export function createEngine(options: EngineOptions): Engine {
  const clock = options.clock ?? (() => performance.now());
  const { latency, observer } = options;
  const prefixCache = createPrefixCache(Math.max(1, Math.floor(options.kvCapacityTokens / 16)));
  const heap = new DueHeap<Entry>();
  let queue: Entry[] = [];
  let queueHead = 0;
  let waitingCount = 0;
  let runningSeqs = 0;
  let kvHeld = 0;
  let timer: NodeJS.Timeout | null = null;
  let timerAt = Infinity;
  let immediate: NodeJS.Immediate | null = null;
  let stopped = false;
  const stats: EngineStats = {
    admitted: 0,
    completed: 0,
    aborted: 0,
    rejected: 0,
    promptTokens: 0,
    completionTokens: 0,
    completedPromptTokens: 0,
    completedCompletionTokens: 0,
  };

  const tokensBetween = (lengths: readonly number[], from: number, to: number): number => {
    let n = 0;
    for (const len of lengths) n += Math.max(0, Math.min(to, len) - Math.min(from, len));
    return n;
  };

  function schedule(): void {
    if (stopped) return;
    const top = heap.peek();
    if (top === undefined) return;
    const delay = top.dueAt - clock();
    if (delay <= 0) {
      immediate ??= setImmediate(tick);
      return;
    }
    if (timer !== null && timerAt <= top.dueAt) return;
    if (timer !== null) clearTimeout(timer);
    timerAt = top.dueAt;
    timer = setTimeout(tick, Math.max(1, Math.ceil(delay)));
  }

  function tick(): void {
    immediate = null;
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    timerAt = Infinity;
    const now = clock();
    for (let top = heap.peek(); top !== undefined && top.dueAt <= now; top = heap.peek()) {
      heap.pop();
      if (top.state === "running") advance(top, now);
    }
    schedule();
  }

  function advance(e: Entry, now: number): void {
    const job = e.job;
    if (!job.streaming) {
      const total = tokensBetween(job.lengths, 0, e.steps);
      e.step = e.steps;
      stats.completionTokens += total;
      stats.promptTokens += job.promptTokenIds.length;
      observer.generated(total);
      observer.firstToken(e.firstAt - e.arrivalAt);
      if (e.steps > 1) observer.interToken((now - e.firstAt) / (e.steps - 1), e.steps - 1);
      finish(e, now);
      return;
    }
    const from = e.step;
    const limit = Math.min(e.steps, job.stallAtStep ?? e.steps);
    let to = from;
    while (to < limit && e.dueAt <= now) {
      to++;
      if (to < e.steps) e.dueAt += latency.interToken(runningSeqs);
    }
    if (to > from) {
      const n = tokensBetween(job.lengths, from, to);
      stats.completionTokens += n;
      kvHeld += n;
      e.held += n;
      observer.generated(n);
      if (from === 0) {
        // Like vLLM's iteration stats: a prompt counts once its prefill produced a token.
        stats.promptTokens += job.promptTokenIds.length;
        e.firstAt = now;
        observer.firstToken(now - e.arrivalAt);
        if (to > 1) observer.interToken(0, to - 1);
      } else {
        observer.interToken((now - e.lastAt) / (to - from), to - from);
      }
      e.lastAt = now;
      e.step = to;
      job.onTokens?.(from, to, now);
      if (e.state !== "running") return; // the writer dropped the connection
    }
    if (e.step >= e.steps) finish(e, now);
    else if (e.step >= limit) stall(e);
    else heap.push(e);
  }

  function stall(e: Entry): void {
    e.state = "stalled";
    e.job.onStall?.();
  }

  function release(e: Entry): void {
    runningSeqs -= e.slots;
    kvHeld -= e.held;
    e.held = 0;
  }

  function finish(e: Entry, now: number): void {
    e.state = "done";
    release(e);
    stats.completed++;
    stats.completedPromptTokens += e.job.promptTokenIds.length;
    stats.completedCompletionTokens += tokensBetween(e.job.lengths, 0, e.steps);
    const queueMs = e.admittedAt - e.arrivalAt;
    observer.finished({ e2eMs: now - e.arrivalAt, queueMs, reasons: e.job.finishReasons, generatedTokens: tokensBetween(e.job.lengths, 0, e.steps) });
    e.job.onFinish({ queueMs, inferenceMs: now - e.admittedAt, ttftMs: e.firstAt - e.arrivalAt });
    admitWaiting();
  }

  function admit(e: Entry, now: number): void {
    e.state = "running";
    e.admittedAt = now;
    runningSeqs += e.slots;
    stats.admitted++;
    const prompt = e.job.promptTokenIds;
    const cached = prefixCache.lookupAndInsert(prompt);
    e.held = prompt.length;
    kvHeld += e.held;
    observer.admitted({ queueMs: now - e.arrivalAt, promptTokens: prompt.length, cachedTokens: cached });
    const ttft = latency.firstToken(prompt.length - cached, runningSeqs);
    e.firstAt = now + ttft;
    e.lastAt = e.firstAt;
    if (e.job.stallAtStep === 0) {
      stall(e);
      return;
    }
    if (e.job.streaming) {
      e.dueAt = now + ttft;
    } else {
      if (e.job.stallAtStep !== undefined) {
        stall(e);
        return;
      }
      e.dueAt = e.firstAt + latency.interTokens(e.steps - 1, runningSeqs);
      // Held KV grows with the answer; a non-streamed request is charged for it up front.
      const gen = tokensBetween(e.job.lengths, 0, e.steps);
      e.held += gen;
      kvHeld += gen;
    }
    heap.push(e);
  }

  function admitWaiting(): void {
    const now = clock();
    while (queueHead < queue.length) {
      const e = queue[queueHead] as Entry;
      if (e.state !== "waiting") {
        queueHead++;
        continue;
      }
      if (runningSeqs > 0 && runningSeqs + e.slots > options.maxNumSeqs) break;
      queueHead++;
      waitingCount--;
      admit(e, now);
    }
    if (queueHead > 1024 && queueHead * 2 > queue.length) {
      queue = queue.slice(queueHead);
      queueHead = 0;
    }
    schedule();
  }

  return {
    get running() {
      return runningSeqs;
    },
    get waiting() {
      return waitingCount;
    },
    get kvUsage() {
      return Math.min(1, kvHeld / options.kvCapacityTokens);
    },
    stats,
    submit(job) {
      if (waitingCount >= options.maxWaiting && runningSeqs + job.lengths.length > options.maxNumSeqs) {
        stats.rejected++;
        return null;
      }
      const now = clock();
      const e: Entry = {
        job,
        slots: Math.max(1, job.lengths.length),
        steps: Math.max(0, ...job.lengths),
        state: "waiting",
        arrivalAt: now,
        admittedAt: now,
        firstAt: now,
        lastAt: now,
        step: 0,
        dueAt: now,
        held: 0,
      };
      queue.push(e);
      waitingCount++;
      admitWaiting();
      return {
        cancel() {
          if (e.state === "done" || e.state === "cancelled") return;
          const wasWaiting = e.state === "waiting";
          e.state = "cancelled";
          stats.aborted++;
          observer.aborted(e.slots);
          if (wasWaiting) {
            waitingCount--;
          } else {
            release(e);
            admitWaiting();
          }
        },
      };
    },
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      if (immediate !== null) clearImmediate(immediate);
      timer = null;
      immediate = null;
      heap.clear();
    },
  };
}
