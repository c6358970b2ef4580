// Each part the browser tests read carries a data-testid; the tests click, type and read nothing else.
import { useEffect, useState, type FormEvent } from "react"
import { useKV } from "@github/spark/hooks"

type User = { id: string; login: string; avatarUrl: string; email: string; isOwner: boolean }

declare const spark: {
  kv: { keys(): Promise<string[]> }
  user(): Promise<User | null>
}

export default function App() {
  const [count, setCount] = useKV<number>("counter", 0)
  const [todos, setTodos] = useKV<string[]>("todos", [])
  const [draft, setDraft] = useState("")
  const [keys, setKeys] = useState<string[] | null>(null)
  const [user, setUser] = useState<User | null>(null)
  const [error, setError] = useState("")

  const showKeys = () =>
    spark.kv.keys().then((listed) => setKeys([...listed].sort()), (e: unknown) => setError(String(e)))

  useEffect(() => {
    spark.user().then(setUser, (e: unknown) => setError(String(e)))
    showKeys()
  }, [])

  const addTodo = (event: FormEvent) => {
    event.preventDefault()
    setTodos((current) => [...(current ?? []), draft])
    setDraft("")
  }

  const signOut = () =>
    fetch("/_spark/auth/logout", { method: "POST" }).then(
      () => window.location.assign("/"),
      (e: unknown) => setError(String(e)),
    )

  return (
    <main>
      <h1>Browser test app</h1>
      <section>
        <p>
          Count: <output data-testid="count">{count ?? ""}</output>
        </p>
        <button data-testid="increment" onClick={() => setCount((n) => (n ?? 0) + 1)}>
          Increment
        </button>
      </section>
      <section>
        <form onSubmit={addTodo}>
          <input data-testid="todo-input" value={draft} onChange={(e) => setDraft(e.target.value)} />
          <button data-testid="todo-add" type="submit">
            Add
          </button>
        </form>
        <ul data-testid="todos">
          {(todos ?? []).map((todo, i) => (
            <li key={i}>{todo}</li>
          ))}
        </ul>
      </section>
      <section>
        <button data-testid="keys-refresh" onClick={showKeys}>
          List keys
        </button>
        <output data-testid="keys" data-loaded={keys === null ? "false" : "true"}>
          {(keys ?? []).join(",")}
        </output>
      </section>
      <section>
        {user && (
          <p data-testid="user" data-login={user.login} data-owner={String(user.isOwner)} data-avatar={user.avatarUrl}>
            {user.login} ({user.isOwner ? "owner" : "visitor"})
          </p>
        )}
        <a data-testid="sign-in" href={`/_spark/auth/login?return_to=${encodeURIComponent(window.location.pathname)}`}>
          Sign in with GitHub
        </a>
        <button data-testid="sign-out" onClick={signOut}>
          Sign out
        </button>
      </section>
      <p data-testid="error">{error}</p>
    </main>
  )
}
