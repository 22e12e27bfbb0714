/**
 * The one adapter between protoc-gen-es descriptors and @grpc/grpc-js: it turns a
 * generated service descriptor into a grpc-js ServiceDefinition whose (de)serializers
 * are protobuf-es `toBinary`/`fromBinary`, and a typed client constructor.
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { GenerateRequestSchema, GenerateResponseSchema } from "./gen/infera/agent/v1/agent_pb.ts";
import { decodeGenerateRequest, decodeGenerateResponse, encodeGenerateRequest, encodeGenerateResponse } from "./generate-wire.ts";

type MethodDefs<T extends GenServiceMethods> = {
  [K in keyof T]: grpc.MethodDefinition<MessageShape<T[K]["input"]>, MessageShape<T[K]["output"]>>;
};

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The encoded message as a Buffer over the same memory (toBinary's array is fresh and ours): no copy per message. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function serviceDefinition<T extends GenServiceMethods>(service: GenService<T>): MethodDefs<T> {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const input: DescMessage = method.input;
    const output: DescMessage = method.output;
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize:
        input === GenerateRequestSchema
          ? (m: unknown) => encodeGenerateRequest(m as MessageShape<typeof GenerateRequestSchema>)
          : (m: unknown) => asBuffer(toBinary(input, m as MessageShape<DescMessage>)),
      requestDeserialize: input === GenerateRequestSchema ? (b: Buffer) => decodeGenerateRequest(b) : (b: Buffer) => fromBinary(input, b),
      responseSerialize:
        output === GenerateResponseSchema
          ? (m: unknown) => encodeGenerateResponse(m as MessageShape<typeof GenerateResponseSchema>)
          : (m: unknown) => asBuffer(toBinary(output, m as MessageShape<DescMessage>)),
      responseDeserialize: output === GenerateResponseSchema ? (b: Buffer) => decodeGenerateResponse(b) : (b: Buffer) => fromBinary(output, b),
      originalName: lowerFirst(method.name),
    };
  }
  return def as MethodDefs<T>;
}

type ClientMethod<I, O, Kind extends string> = Kind extends "server_streaming"
  ? (req: I, metadata?: grpc.Metadata, options?: grpc.CallOptions) => grpc.ClientReadableStream<O>
  : (req: I, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, res?: O) => void) => grpc.ClientUnaryCall;

export type TypedClient<T extends GenServiceMethods> = grpc.Client & {
  [K in keyof T]: ClientMethod<MessageShape<T[K]["input"]>, MessageShape<T[K]["output"]>, T[K]["methodKind"]>;
};

export function clientConstructor<T extends GenServiceMethods>(
  service: GenService<T>,
): new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => TypedClient<T> {
  return grpc.makeGenericClientConstructor(serviceDefinition(service) as unknown as grpc.ServiceDefinition, service.typeName) as unknown as new (
    address: string,
    credentials: grpc.ChannelCredentials,
    options?: grpc.ClientOptions,
  ) => TypedClient<T>;
}

/** The method map of a generated service, for TypedClient. */
export type ServiceMethods<S> = S extends GenService<infer T> ? T : never;

/**
 * `EngineError.code` when the agent could not reach its engine or lost the connection to it
 * (the engine process died, refused, hung up): a fault of the replica, not an answer of the
 * engine. A gateway that has sent nothing to its client yet gives the request to another replica.
 */
export const ENGINE_UNREACHABLE = "engine_unreachable";
