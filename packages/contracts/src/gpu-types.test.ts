import { describe, expect, it } from "vitest";
import { gpuTypesFrom, LOCAL_GPU_TYPES, parseGpuTypes } from "./gpu-types.ts";

describe("GPU types", () => {
  it("reads the same GPU_TYPES document the scheduler reads, with its scheduling fields", () => {
    const text = JSON.stringify([{ name: "H100-80GB", count: 16, nodeSelector: { pool: "h100" }, tolerations: [{ key: "gpu" }] }, { name: "L40S" }]);
    expect(parseGpuTypes(text, "GPU_TYPES")).toEqual([
      { name: "H100-80GB", count: 16, nodeSelector: { pool: "h100" }, tolerations: [{ key: "gpu" }] },
      { name: "L40S" },
    ]);
    expect(() => parseGpuTypes(JSON.stringify([{ name: "A", nodeSelector: { pool: 1 } }]), "GPU_TYPES")).toThrow(/\[0\] nodeSelector/);
  });

  it("names the variable and the entry at fault", () => {
    expect(() => parseGpuTypes("{", "GPU_TYPES (/g.json)")).toThrow(/GPU_TYPES \(\/g\.json\): not valid JSON/);
    expect(() => parseGpuTypes("[]", "GPU_TYPES")).toThrow(/non-empty/);
    expect(() => parseGpuTypes('[{"count": 1}]', "GPU_TYPES")).toThrow(/\[0\] name is required/);
    expect(() => parseGpuTypes('[{"name":"a"},{"name":"a"}]', "GPU_TYPES")).toThrow(/\[1\] duplicate/);
    expect(() => parseGpuTypes('[{"name":"a","count":-1}]', "GPU_TYPES")).toThrow(/count/);
  });

  it("falls back to the local list without GPU_TYPES, and fails on an unreadable file", async () => {
    expect(await gpuTypesFrom(undefined)).toBe(LOCAL_GPU_TYPES);
    expect(LOCAL_GPU_TYPES.map((g) => g.name)).toEqual(["A100-80GB", "H100-80GB", "L4"]);
    await expect(gpuTypesFrom("/nonexistent/gpu-types.json")).rejects.toThrow(/GPU_TYPES: cannot read/);
  });
});
