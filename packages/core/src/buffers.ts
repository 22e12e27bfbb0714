/**
 * A Buffer in memory of its own. Node serves small Buffers (`Buffer.from`, `allocUnsafe`, under
 * 4 KB) as slices of a shared 8 KB slab, and one kept for a request's life keeps the whole slab:
 * with 2,000 streams open the gateway held ≈ 8 KB per stream for each such Buffer it kept (the
 * request's engine body, its encoded gRPC request, a stream's first chunk), a third of what its
 * memory grew. Use it for what lives as long as a request; a Buffer used and dropped at once is
 * cheaper from the slab.
 */
export function ownedBuffer(from: string | Uint8Array): Buffer {
  if (typeof from !== "string") {
    const b = Buffer.allocUnsafeSlow(from.byteLength);
    b.set(from);
    return b;
  }
  const b = Buffer.allocUnsafeSlow(Buffer.byteLength(from));
  b.write(from);
  return b;
}
