/**
 * What the benchmark reads about processes from /proc: the process tree under a pid,
 * CPU time (utime + stime), resident memory (VmRSS) and a process's environment.
 * Linux only, like the targets it checks.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every Linux the bench runs on). */
const CLK_TCK = 100;

export interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parens: fields start after the last ')'.
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Every live process below `root` (children, grandchildren, …). */
export function descendants(root: number): ProcInfo[] {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const f = statFields(pid);
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = byParent.get(ppid) ?? [];
    list.push(pid);
    byParent.set(ppid, list);
  }
  const out: ProcInfo[] = [];
  const stack = [...(byParent.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      continue;
    }
    out.push({ pid, ppid: Number(statFields(pid)?.[1] ?? 0), cmdline });
    stack.push(...(byParent.get(pid) ?? []));
  }
  return out;
}

/** CPU time the process has used (user + system), in microseconds; 0 when it is gone. */
export function cpuMicros(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  // After ')': state(0) ppid(1) … utime(11) stime(12).
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

/**
 * Read and write system calls the process made so far (`syscr` + `syscw` in /proc/<pid>/io:
 * read, write, writev and the like, sockets and files alike); 0 when it is gone. Unlike CPU
 * time it hardly depends on what else the machine runs: the A/B figure for a cut in syscalls.
 */
export function ioSyscalls(pid: number): number {
  try {
    const t = readFileSync(`/proc/${pid}/io`, "utf8");
    return Number(/syscr:\s+(\d+)/.exec(t)?.[1] ?? 0) + Number(/syscw:\s+(\d+)/.exec(t)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Resident set size in MB (VmRSS); 0 when the process is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident memory by kind (MB): anonymous (heaps, buffers) and file-backed (the node binary's and libraries' pages, shared between processes). */
export function rssKindsMb(pid: number): { anon: number; file: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return { anon: Math.round(kb("RssAnon")), file: Math.round(kb("RssFile")) };
  } catch {
    return { anon: 0, file: 0 };
  }
}

export function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  try {
    for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
      const i = kv.indexOf("=");
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  } catch {
    // gone
  }
  return env;
}

/** 1-minute load average and core count, printed next to every figure. */
export function machineLoad(): { load1: number; load5: number; cores: number } {
  const [l1, l5] = readFileSync("/proc/loadavg", "utf8").split(" ");
  const cores = readFileSync("/proc/cpuinfo", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("processor")).length;
  return { load1: Number(l1), load5: Number(l5), cores };
}

/**
 * `--cpu-prof` is not allowed in NODE_OPTIONS, so every child process preloads this: the
 * in-process inspector samples from start to exit and writes `<pid>-<service>.cpuprofile`.
 * SIGUSR2 starts the profile over (`restartProfiles`): the bench sends it after warm-up, so
 * the profile holds the measured requests, not start-up (module loading, schema compilation).
 */
function profilerPreload(dir: string): string {
  return `import{Session}from"node:inspector";import{writeFileSync}from"node:fs";
const s=new Session();s.connect();s.post("Profiler.enable");s.post("Profiler.setSamplingInterval",{interval:250});s.post("Profiler.start");
process.on("SIGUSR2",()=>s.post("Profiler.stop",()=>s.post("Profiler.start")));
const m=/(?:services|deploy)\\/([^/]+)\\//.exec(process.argv[1]||"");const name=m?m[1]:"node";let done=false;
process.on("exit",()=>{if(done)return;done=true;s.post("Profiler.stop",(err,r)=>{if(!err)writeFileSync(${JSON.stringify(dir)}+"/"+process.pid+"-"+name+".cpuprofile",JSON.stringify(r.profile))})});`;
}

/** Profiled processes (`--profile`) start their profile over from now: what follows warm-up. Node processes only (SIGUSR2 ends redis-server). */
export function restartProfiles(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGUSR2");
    } catch {
      // gone
    }
  }
}

/** NODE_OPTIONS that make every Node child process profile itself into `dir`. */
export function profilerNodeOptions(dir: string): string {
  return `${process.env.NODE_OPTIONS ?? ""} --import=data:text/javascript,${encodeURIComponent(profilerPreload(dir))}`.trim();
}
