import { createRoot } from "react-dom/client"
import "@github/spark/spark"
import App from "./App"

createRoot(document.getElementById("root")!).render(<App />)
