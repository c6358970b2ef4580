// What a new Spark app's vite.config.ts holds, less what this app does not use (Tailwind, icons, aliases).
// The Spark plugin sets the dev server's port (5000) over vite's --port: the tests pick a free one by PORT.
import react from "@vitejs/plugin-react"
import sparkPlugin from "@github/spark/spark-vite-plugin"
import { defineConfig, type PluginOption } from "vite"

const port = process.env.PORT ? Number(process.env.PORT) : undefined

export default defineConfig({
  plugins: [react(), sparkPlugin({ port }) as PluginOption],
})
