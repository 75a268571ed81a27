// The console's API clients: generated service descriptors (src/gen, from the gateway's descriptor
// set) over gRPC-Web to the gateway that served this page, with the session's bearer token.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/odin/auth/v1/auth_pb";
import { MidgardService } from "./gen/odin/midgard/v1/midgard_pb";
import { PipelinesService } from "./gen/odin/pipelines/v1/pipelines_pb";
import { SchedulerService } from "./gen/odin/scheduler/v1/scheduler_pb";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb";
import { session } from "./session";

const withToken: Interceptor = (next) => async (req) => {
  const token = await session.accessToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(req);
  } catch (err) {
    const error = ConnectError.from(err);
    if (error.code === Code.Unauthenticated && token && !req.stream) {
      // The token may have been revoked or expired in flight: refresh once and try again.
      if (await session.refresh()) {
        req.header.set("authorization", `Bearer ${await session.accessToken()}`);
        const retried = await session.accessToken();
        try {
          return await next(req);
        } catch (again) {
          throw expired(again, retried);
        }
      }
    }
    throw expired(error, token);
  }
};

/** A final UNAUTHENTICATED ends the session: the app then sends the user to login and back. */
function expired(err: unknown, token: string | null): ConnectError {
  const error = ConnectError.from(err);
  if (error.code === Code.Unauthenticated) session.expired(token);
  return error;
}

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [withToken],
});

export const auth: Client<typeof AuthService> = createClient(AuthService, transport);
export const scheduler: Client<typeof SchedulerService> = createClient(SchedulerService, transport);
export const pipelines: Client<typeof PipelinesService> = createClient(PipelinesService, transport);
export const midgard: Client<typeof MidgardService> = createClient(MidgardService, transport);

/** What the API said, as it said it: code, message, ErrorInfo reason and BadRequest field violations. */
export interface ApiProblem {
  code: string;
  message: string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  violations: { field: string; description: string }[];
}

export function problem(err: unknown): ApiProblem {
  const error = ConnectError.from(err);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const violations = error.findDetails(BadRequestSchema).flatMap((b) =>
    b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
  return {
    code: codeName(error.code),
    message: error.rawMessage,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: info ? { ...info.metadata } : {},
    violations,
  };
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError" ||
    ConnectError.from(err).code === Code.Canceled;
}

export function codeName(code: Code): string {
  // Code is a numeric enum: its reverse mapping gives e.g. "InvalidArgument"; show the gRPC spelling.
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
