/** OpenAI's cursor page: `{object: "list", data, first_id, last_id, has_more}` (the deploy events and the audit trail). */
export function cursorPage<T extends { id: string }>(data: T[], hasMore: boolean) {
  return { object: "list" as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
}
