/** What the framework tests share: the weather tool in each framework's shape, and a text stream read whole. */
import { tool as lcTool } from "@langchain/core/tools";
import { tool } from "ai";
import { z } from "zod";

const description = "Weather in a city";
const input = z.object({ city: z.string() });

/** The AI SDK's `get_weather`: it answers `${weather} in ${city}` and tells `onCall` the city. */
export const aiWeather = (weather = "sunny", onCall: (city: string) => void = () => undefined) =>
  tool({
    description,
    inputSchema: input,
    execute: async ({ city }) => {
      onCall(city);
      return `${weather} in ${city}`;
    },
  });

/** LangChain's `get_weather`, answering `sunny in ${city}`. */
export const lcWeather = () => lcTool(async ({ city }: { city: string }) => `sunny in ${city}`, { name: "get_weather", description, schema: input });

/** A text stream's parts joined, and how many there were. */
export async function readText(stream: AsyncIterable<string>): Promise<{ text: string; parts: number }> {
  let text = "";
  let parts = 0;
  for await (const t of stream) {
    text += t;
    parts++;
  }
  return { text, parts };
}
