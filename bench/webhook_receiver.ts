/**
 * The webhook receiver of the bench's BW scenario: answers every POST with 204 at once and counts
 * the events by type, each `webhook-id` once (a retry after a lost 2xx is a duplicate, counted
 * apart); `GET /count` returns the counts as JSON. It verifies no signature: it stands for a
 * receiver's cost to the sender, not for a backend. Run by `bench/run.ts` on the load generator's
 * CPU, never the server's.
 *
 * ```sh
 * PORT=4000 deno run -A bench/webhook_receiver.ts
 * curl -s 127.0.0.1:4000/count   # {"posts":0,"duplicates":0,"types":{}}
 * ```
 * @module
 */

/** What `GET /count` answers. */
export interface ReceiverCounts {
  /** POSTs received, duplicates included. */
  posts: number;
  /** POSTs whose `webhook-id` had been received before. */
  duplicates: number;
  /** Distinct events by `type`. */
  types: Record<string, number>;
}

/** Starts the receiver on `port`; the counts are read with `GET /count`. */
export function serveReceiver(port: number, hostname = "127.0.0.1"): Deno.HttpServer {
  const seen = new Set<string>();
  const counts: ReceiverCounts = { posts: 0, duplicates: 0, types: {} };
  return Deno.serve({ port, hostname, onListen: () => {} }, async (request) => {
    if (request.method === "GET") return Response.json(counts);
    const body = await request.text();
    counts.posts++;
    const id = request.headers.get("webhook-id") ?? "";
    if (seen.has(id)) counts.duplicates++;
    else {
      seen.add(id);
      const { type } = JSON.parse(body) as { type: string };
      counts.types[type] = (counts.types[type] ?? 0) + 1;
    }
    return new Response(null, { status: 204 });
  });
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT") ?? 4000);
  serveReceiver(port);
  console.error(`webhook receiver listening on http://127.0.0.1:${port}`);
}
