// What `npm create` of a Spark app writes, less what this app does not use (Tailwind, icons, aliases).
import react from "@vitejs/plugin-react"
import sparkPlugin from "@github/spark/spark-vite-plugin"
import { defineConfig, type PluginOption } from "vite"

export default defineConfig({
  plugins: [react(), sparkPlugin() as PluginOption],
})
