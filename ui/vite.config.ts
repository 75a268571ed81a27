import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build is served by the gateway (Envoy) at `/`: index.html plus hashed files under /assets/.
// `npm run dev` proxies the API to a running gateway: ODIN_GATEWAY=127.0.0.1:PORT npm run dev
const gateway = process.env.ODIN_GATEWAY ?? "127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1500 },
  server: {
    host: "127.0.0.1",
    proxy: { "^/odin\\.": { target: `http://${gateway}`, changeOrigin: false } },
  },
});
