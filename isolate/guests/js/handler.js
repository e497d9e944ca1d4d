// A `wasi:http` handler in JavaScript (componentize-js / StarlingMonkey), with the
// service-worker `fetch` event API. Answers every request with its method, path and the
// length of its body; `count` is 1 on every request when each request gets a fresh instance.
let count = 0;

addEventListener("fetch", (event) =>
  event.respondWith(
    (async () => {
      count += 1;
      const url = new URL(event.request.url);
      const body = await event.request.arrayBuffer();
      const text =
        `Hello from JavaScript: ${event.request.method} ${url.pathname}, ` +
        `${body.byteLength} bytes, count=${count}\n`;
      return new Response(text, {
        headers: { "content-type": "text/plain", "x-guest": "javascript" },
      });
    })(),
  ),
);
