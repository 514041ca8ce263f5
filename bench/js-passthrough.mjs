// The baseline of the passthrough benchmark: the least a Worker can do in front of an origin.
// Same runtime, same socket, same origin as the Rust Worker; it only forwards the request and
// returns the origin's response as it came (redirects returned, not followed).
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
    });
  },
};
