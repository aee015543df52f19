// Test program of the .NET binding, run under Mono by scripts/test-csharp against the Dovecot
// harness. Environment (set by the script): PMA_TEST_USER (a fresh mailbox holding 3 unread
// messages, the second with hello.txt), PMA_TEST_USER2 (another fresh mailbox), PMA_TEST_STATE
// (a fresh state directory), and the harness's PMA_CA_FILE, PMA_IMAPS_PORT, PMA_PASSWORD.
// Optional OAuth + shared mailbox run: PMA_TEST_OAUTH_SHARED (the shared mailbox holding 3
// messages), PMA_TEST_OAUTH_USER (its delegate), PMA_IDP_URL, PMA_TEST_OAUTH_APP,
// PMA_TEST_OAUTH_TENANT. The long-lived host's calls: PMA_TEST_PARTIAL (another mailbox with
// the 3 messages), PMA_DOMAIN (fresh users), and curl on the PATH (mail delivered mid-wait).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using PsaMailAgent;

static class Tests
{
    static int checks;
    static int failures;

    static void Check(bool ok, string what)
    {
        checks++;
        if (!ok)
        {
            failures++;
            Console.Error.WriteLine("check failed: " + what);
        }
    }

    static void Throws<T>(Action action, string what, Func<T, bool> expect) where T : Exception
    {
        checks++;
        try
        {
            action();
            failures++;
            Console.Error.WriteLine("no exception: " + what);
        }
        catch (T e)
        {
            if (!expect(e))
            {
                failures++;
                Console.Error.WriteLine("unexpected " + typeof(T).Name + " for " + what + ": " + e.Message);
            }
        }
        catch (Exception e)
        {
            failures++;
            Console.Error.WriteLine("wrong exception for " + what + ": " + e);
        }
    }

    static string Env(string name)
    {
        string v = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrEmpty(v))
        {
            Console.Error.WriteLine("missing environment variable " + name + " (run scripts/test-csharp)");
            Environment.Exit(2);
        }
        return v;
    }

    static string Mailbox(string name, string user, string extra = "")
    {
        return "{\"name\": \"" + name + "\", \"email\": \"" + user + "\", \"username\": \"" + user + "\"," +
               " \"password_env\": \"PMA_PASSWORD\", \"imap\": {\"server\": \"127.0.0.1\", \"port\": " +
               Env("PMA_IMAPS_PORT") + ", \"ca_file\": \"" + Env("PMA_CA_FILE") + "\"}" + extra + "}";
    }

    static int fresh;

    static string FreshUser(string prefix)
    {
        return prefix + "-" + Process.GetCurrentProcess().Id + "-" + DateTime.UtcNow.Ticks + "-" + (fresh++) + "@" + Env("PMA_DOMAIN");
    }

    static string OAuth(string flow)
    {
        return ", \"oauth\": {\"enabled\": true, \"application_id\": \"app-public\", \"directory_id\": \"contoso-tenant\"," +
               " \"flow\": \"" + flow + "\", \"authority\": \"" + Env("PMA_IDP_URL") + "\"}";
    }

    // A mailbox entry without password (set with SetPassword), `extra` inside the object.
    static string Entry(string name, string user, string extra)
    {
        return "{\"name\": \"" + name + "\", \"email\": \"" + user + "\", \"imap\": {\"server\": \"127.0.0.1\", \"port\": " +
               Env("PMA_IMAPS_PORT") + ", \"ca_file\": \"" + Env("PMA_CA_FILE") + "\", \"timeout_secs\": 60}" + extra + "}";
    }

    // POST to the identity endpoint's control API; returns the HTTP status line and body.
    static string Idp(string path)
    {
        var url = new Uri(Env("PMA_IDP_URL"));
        using (var tcp = new TcpClient(url.Host, url.Port))
        using (var stream = tcp.GetStream())
        {
            byte[] req = Encoding.ASCII.GetBytes("POST " + path + " HTTP/1.1\r\nHost: " + url.Host +
                "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.Write(req, 0, req.Length);
            using (var reader = new StreamReader(stream, Encoding.UTF8))
            {
                return reader.ReadToEnd();
            }
        }
    }

    // Delivers a mail with curl (IMAP APPEND), as scripts/test-csharp seeds.
    static void Deliver(string user, string subject)
    {
        string path = Path.GetTempFileName();
        File.WriteAllText(path, "From: cs@example.com\r\nTo: " + user + "\r\nSubject: " + subject +
            "\r\nMessage-ID: <" + subject + "-" + DateTime.UtcNow.Ticks + "@example.com>\r\n\r\nbody\r\n");
        var psi = new ProcessStartInfo("curl", "-sS --cacert " + Env("PMA_CA_FILE") + " --user \"" + user + ":" +
            Env("PMA_PASSWORD") + "\" -T " + path + " imaps://127.0.0.1:" + Env("PMA_IMAPS_PORT") + "/INBOX");
        psi.UseShellExecute = false;
        using (Process p = Process.Start(psi))
        {
            p.WaitForExit();
            Check(p.ExitCode == 0, "curl delivered " + subject);
        }
        File.Delete(path);
    }

    // Typed tickets, raw messages and an attachment over the limit (nothing acknowledged).
    static void TypedModelRawAndOmitted(string state)
    {
        using (var agent = new Agent(Entry("cs-typed", Env("PMA_TEST_USER"), ", \"keep_raw\": true, \"max_attachment_bytes\": 10"), state))
        {
            agent.SetPassword(Env("PMA_PASSWORD"));
            using (Batch batch = agent.Fetch(10))
            {
                Check(batch.Count == 3, "typed: 3 tickets");
                List<Ticket> tickets = batch.ToList();
                Check(tickets.Count == 3 && batch[2].Subject == "Grüße aus München", "typed subject");
                Ticket first = tickets[0];
                Check(first.From != null && first.From.Email == "alice@example.com" && first.From.Name == "Alice Customer",
                    "typed from: " + first.From);
                Check(first.To.Count == 1 && first.To[0].Email == "helpdesk@contoso.test", "typed to");
                Check(first.MessageId == "c-ffi-1@example.com" && first.DedupeKey.Length > 0, "typed ids");
                Check(first.Date.HasValue && first.Date.Value.Year == 2026 && first.Date.Value.Offset == TimeSpan.Zero, "typed date");
                Check(first.Body.Contains("paper jam") && first.Priority == "normal" && first.AutoGenerated == null, "typed body");
                Check(first.DeliveryId.StartsWith("INBOX:") && first.Thread != null && first.Thread.References.Count == 0, "typed thread");
                Ticket second = tickets[1];
                Check(second.Attachments.Count == 1, "typed attachments");
                Attachment hello = second.Attachments[0];
                Check(hello.Filename == "hello.txt" && hello.Size == 17 && hello.IsOmitted && hello.Omitted == "too_large",
                    "omitted attachment: " + second.Json);
                Check(hello.SaveAs == "hello.txt", "save_as: " + second.Json);
                Throws<PmaException>(() => batch.Attachment(second, hello), "omitted bytes",
                    e => e.Code == PmaResult.AttachmentOmitted && e.LastError.Contains("max_attachment_bytes"));
                Check(second.Warnings.Any(w => w.Contains("hello.txt")), "a warning names it");
                string raw = Encoding.UTF8.GetString(batch.Raw(0));
                Check(raw.StartsWith("From: Alice Customer") && raw.Contains("Message-ID: <c-ffi-1@example.com>"), "raw message");
                Throws<PmaException>(() => batch.Raw(3), "raw index", e => e.Code == PmaResult.IndexOutOfRange && e.LastError.Contains("3"));
            }
        }
        using (var agent = new Agent(Entry("cs-untyped", Env("PMA_TEST_USER"), ""), state))
        {
            agent.SetPassword(Env("PMA_PASSWORD"));
            using (Batch batch = agent.Fetch(1))
            {
                Throws<PmaException>(() => batch.Raw(0), "no keep_raw", e => e.Code == PmaResult.RawNotKept && e.LastError.Contains("keep_raw"));
                Check(batch[0].Attachments.Count == 0 && !batch[0].Json.Contains("omitted"), "no omission below the limit");
            }
        }
        Check(Ticket.Parse("{\"subject\":\"a\\u00e9\\n\",\"attachments\":[],\"to\":[]}").Subject == "a\u00e9\n", "JSON escapes");
        Throws<FormatException>(() => Ticket.Parse("[1,"), "bad JSON", e => true);
    }

    // A wrong password fails the test although a token is cached; secrets from the host.
    static void TruthAndSecrets(string state)
    {
        string user = FreshUser("cs-truth");
        using (var agent = new Agent(Entry("cs-truth", user, OAuth("password")), state))
        {
            Throws<PmaException>(() => agent.Fetch(1), "no password yet", e => e.Code == PmaResult.Config && e.LastError.Contains("password"));
            Throws<ArgumentNullException>(() => agent.SetPassword(null), "null password", e => true);
            Throws<PmaException>(() => agent.SetPassword(""), "empty password", e => e.Code == PmaResult.InvalidArgument);
            agent.SetPassword(Env("PMA_PASSWORD"));
            using (Report r = agent.TestConnection())
            {
                Check(r.Healthy, "right password: " + r.Json);
            }
            using (Report r = agent.TestConnection())
            {
                Check(r.Healthy, "right password with a cached token: " + r.Json);
            }
            agent.SetPassword("Not-The-Pa55word");
            using (Report r = agent.TestConnection())
            {
                Step failed = Array.Find(r.Steps, st => st.Status == PmaStepStatus.Failed);
                Check(failed != null && failed.Name == "token" && failed.Result == PmaResult.OauthInvalidCredentials
                      && failed.Detail.Contains("the password of " + user) && failed.Fix != null
                      && !r.Json.Contains("Not-The-Pa55word"), "wrong password: " + r.Json);
            }
            Throws<PmaException>(() => agent.Fetch(1), "fetch with a wrong password",
                e => e.Code == PmaResult.OauthInvalidCredentials && e.LastError.Contains("the password of"));
        }
        using (var app = new Agent(Entry("cs-app", FreshUser("cs-app"),
            ", \"oauth\": {\"enabled\": true, \"application_id\": \"app-confidential\", \"directory_id\": \"contoso-tenant\"," +
            " \"flow\": \"client_credentials\", \"authority\": \"" + Env("PMA_IDP_URL") + "\"}"), state))
        {
            app.SetClientSecret("not-the-s3cret");
            using (Report r = app.TestConnection())
            {
                Check(r.Steps[0].Result == PmaResult.OauthInvalidClientSecret && r.Steps[0].Detail.Contains("client secret"), "wrong client secret: " + r.Json);
            }
            app.SetClientSecret("s3cret-app");
            using (Report r = app.TestConnection())
            {
                Check(r.Steps[0].Status == PmaStepStatus.Passed, "right client secret: " + r.Json);
            }
        }
    }

    // Partial acknowledgement: the rest is delivered again.
    static void PartialAck(string state)
    {
        using (var agent = new Agent(Entry("cs-partial", Env("PMA_TEST_PARTIAL"), ""), state))
        {
            agent.SetPassword(Env("PMA_PASSWORD"));
            using (Batch batch = agent.Fetch(10))
            {
                Check(batch.Count == 3, "partial: 3 tickets");
                Throws<PmaException>(() => agent.AckTickets(batch, 4), "count above", e => e.Code == PmaResult.InvalidArgument);
                Throws<ArgumentOutOfRangeException>(() => agent.AckTickets(batch, -1), "negative count", e => true);
                agent.AckTickets(batch, 1);
                Throws<PmaException>(() => agent.Ack(batch), "settled", e => e.Code == PmaResult.AlreadyAcked);
            }
            using (Batch rest = agent.FetchAsync(10).GetAwaiter().GetResult())
            {
                Check(rest.Count == 2 && rest[0].MessageId == "c-ffi-2@example.com" && rest[1].MessageId == "c-ffi-3@example.com",
                    "the other two come again");
                agent.AckTicketsAsync(rest, 2).GetAwaiter().GetResult();
            }
            using (Batch none = agent.Fetch(10))
            {
                Check(none.Count == 0, "all acknowledged");
            }
        }
    }

    // Waiting for mail, and cancellation through CancellationToken and Cancel().
    static void WaitAndCancel(string state)
    {
        string user = FreshUser("cs-wait");
        using (var agent = new Agent(Entry("cs-wait", user, ""), state))
        {
            agent.SetPassword(Env("PMA_PASSWORD"));
            Check(!agent.WaitForMail(TimeSpan.Zero), "nothing waiting");
            Check(!agent.WaitForMailAsync(TimeSpan.FromMilliseconds(200)).GetAwaiter().GetResult(), "timeout");
            Task<bool> waiting = agent.WaitForMailAsync(TimeSpan.FromMinutes(1));
            Thread.Sleep(500);
            Deliver(user, "cs-arrived");
            Check(waiting.GetAwaiter().GetResult(), "mail arrived during the wait");
            using (Batch b = agent.Fetch(10))
            {
                Check(b.Count == 1 && b[0].Subject == "cs-arrived", "the arrived mail");
                agent.AckAsync(b).GetAwaiter().GetResult();
            }

            // A token cancelled while the wait runs: OperationCanceledException, and the agent
            // works on.
            using (var cts = new CancellationTokenSource())
            {
                Task<bool> wait = agent.WaitForMailAsync(TimeSpan.FromMinutes(1), cts.Token);
                Thread.Sleep(300);
                cts.Cancel();
                bool cancelled = false;
                try
                {
                    wait.GetAwaiter().GetResult();
                }
                catch (OperationCanceledException e)
                {
                    cancelled = e.CancellationToken == cts.Token;
                }
                Check(cancelled, "the wait was cancelled by its token");
            }
            Check(!agent.WaitForMail(TimeSpan.Zero), "works after a cancel");
            // An already cancelled token: the call does not start.
            using (var cts = new CancellationTokenSource())
            {
                cts.Cancel();
                Task<Batch> f = agent.FetchAsync(1, cts.Token);
                Throws<OperationCanceledException>(() => f.GetAwaiter().GetResult(), "cancelled before the start", e => true);
            }
            // Cancel() from another thread ends a blocking call there.
            var t = new Thread(() =>
            {
                while (true)
                {
                    Thread.Sleep(100);
                    try
                    {
                        agent.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                    if (Volatile.Read(ref stopCancelling) != 0)
                    {
                        return;
                    }
                }
            });
            t.Start();
            Throws<PmaException>(() => agent.WaitForMail(TimeSpan.FromMinutes(1)), "Cancel() from another thread",
                e => e.Code == PmaResult.Cancelled && e.LastError.Contains("pma_cancel"));
            Volatile.Write(ref stopCancelling, 1);
            t.Join();
            Check(!agent.WaitForMail(TimeSpan.Zero), "works after Cancel()");
        }
    }

    static int stopCancelling;

    // Device-code sign-in in the host's UI, with a cancelled wait in between.
    static void DeviceLogin(string state)
    {
        string user = FreshUser("cs-device");
        Idp("/_test/set?device_interval=1");
        using (var agent = new Agent(Entry("cs-device", user, OAuth("device_code")), state))
        {
            Throws<PmaException>(() => agent.DeviceLoginComplete(), "not begun", e => e.Code == PmaResult.DeviceLoginNotStarted);
            DevicePrompt prompt = agent.DeviceLoginBeginAsync().GetAwaiter().GetResult();
            Check(prompt.UserCode.Length > 0 && prompt.VerificationUri.StartsWith("http") && prompt.ExpiresIn > TimeSpan.Zero
                  && prompt.Message.Contains(prompt.UserCode), "device prompt");
            using (var cts = new CancellationTokenSource())
            {
                Task waiting = agent.DeviceLoginCompleteAsync(cts.Token);
                Thread.Sleep(300);
                cts.Cancel();
                Throws<OperationCanceledException>(() => waiting.GetAwaiter().GetResult(), "device wait cancelled", e => true);
            }
            string answer = Idp("/_test/approve_device?user=" + user + "&user_code=" + prompt.UserCode);
            Check(answer.StartsWith("HTTP/1.1 200"), "approved: " + answer);
            agent.DeviceLoginCompleteAsync().GetAwaiter().GetResult();
            using (Report r = agent.TestConnectionAsync().GetAwaiter().GetResult())
            {
                Check(r.Healthy, "signed in by device code: " + r.Json);
            }
        }
        Idp("/_test/set?device_interval=5");
    }

    // Two threads on one agent each read their own error.
    static void ErrorsPerThread(string state)
    {
        using (var agent = new Agent(Entry("cs-errors", FreshUser("cs-errors"), ""), state))
        {
            agent.SetPassword(Env("PMA_PASSWORD"));
            var barrier = new Barrier(2);
            string first = null, second = null;
            var a = new Thread(() =>
            {
                try { agent.RegisterSent("", "T-1"); } catch (PmaException e) { first = e.LastError; }
                barrier.SignalAndWait();
                barrier.SignalAndWait();
            });
            var b = new Thread(() =>
            {
                barrier.SignalAndWait();
                try { agent.Ack(null); } catch (ArgumentNullException) { }
                try { agent.AckTickets(agent.Fetch(1), 5); } catch (PmaException e) { second = e.LastError; }
                barrier.SignalAndWait();
            });
            a.Start();
            b.Start();
            a.Join();
            b.Join();
            Check(first != null && first.Contains("register_sent"), "thread 1's error: " + first);
            Check(second != null && second.Contains("count 5"), "thread 2's error: " + second);
        }
    }

    static void StaticFunctions()
    {
        Check(Regex.IsMatch(Agent.Version, @"^\d+\.\d+\.\d+$"), "version format");
        // The .NET enum and the library agree on every code.
        foreach (PmaResult r in Enum.GetValues(typeof(PmaResult)))
        {
            string expected = "PMA_" + Regex.Replace(r.ToString(), "(?<!^)([A-Z])", "_$1").ToUpperInvariant();
            Check(PmaNative.ResultName(r) == expected, r + " is named " + PmaNative.ResultName(r));
        }
        Check(PmaNative.ResultName((PmaResult)4242) == "PMA_UNKNOWN", "unknown code");
    }

    static void Misuse(string state)
    {
        Throws<PmaException>(() => new Agent("{\"name\": \"x\", \"email\": \"x@contoso.test\", \"username\": \"x\"," +
                                             " \"password\": \"p\", \"imap\": {\"port\": \"abc\"}}", state),
            "bad port", e => e.Code == PmaResult.Config && e.LastError.Contains("imap.port"));
        Throws<PmaException>(() => new Agent("not json", state), "not JSON", e => e.Code == PmaResult.Config);
        Throws<ArgumentNullException>(() => new Agent(null, state), "null JSON", e => true);
        // Strings travel as UTF-8: a name with non-ASCII characters comes back unchanged in errors.
        Throws<PmaException>(() => new Agent("{\"name\": \"Störungen\", \"email\": \"bad\"}", state),
            "non-ASCII", e => e.Code == PmaResult.Config);
    }

    static void RealFetch(string state)
    {
        var records = new List<string>();
        PmaLog.SetHandler((level, target, message) =>
        {
            lock (records)
            {
                records.Add(level + " " + target + ": " + message);
            }
            // Thrown on purpose: the binding must keep it from crossing into native code.
            throw new InvalidOperationException("handler failure");
        }, PmaLogLevel.Trace);

        string user = Env("PMA_TEST_USER");
        using (var agent = new Agent(Mailbox("cs-main", user), state))
        using (var other = new Agent(Mailbox("cs-other", Env("PMA_TEST_USER2")), state))
        {
            using (Report report = agent.TestConnection())
            {
                Check(report.Healthy, "healthy: " + report.Json);
                Step[] steps = report.Steps;
                Check(steps.Length == 5, "5 steps");
                Check(steps.Length == 5 && steps[3].Name == "authenticate" && steps[3].Status == PmaStepStatus.Passed,
                    "authenticate passed");
                Check(report.Json.StartsWith("{\"healthy\":true"), "report JSON");
            }
            Throws<ArgumentOutOfRangeException>(() => agent.Fetch(0), "max 0", e => true);

            using (Batch batch = agent.Fetch(10))
            {
                Check(batch.Count == 3, "3 tickets, got " + batch.Count);
                Check(batch.Json.StartsWith("[{") && batch.Json.EndsWith("}]"), "batch JSON array");
                bool attachment = false;
                for (int i = 0; i < batch.Count; i++)
                {
                    string t = batch.TicketJson(i);
                    Check(t.Contains("\"dedupe_key\":\""), "dedupe_key in ticket " + i);
                    for (int a = 0; a < batch.AttachmentCount(i); a++)
                    {
                        if (t.Contains("\"filename\":\"hello.txt\"") &&
                            Encoding.UTF8.GetString(batch.Attachment(i, a)) == "Hello attachment\n")
                        {
                            attachment = true;
                        }
                    }
                }
                Check(attachment, "hello.txt decoded bytes");
                Check(batch.Count == 3 && batch.TicketJson(2).Contains("Grüße aus München"),
                    "UTF-8 subject: " + (batch.Count == 3 ? batch.TicketJson(2) : ""));
                Throws<PmaException>(() => batch.TicketJson(3), "index 3", e => e.Code == PmaResult.IndexOutOfRange);
                Throws<PmaException>(() => other.Ack(batch), "foreign batch",
                    e => e.Code == PmaResult.ForeignBatch && e.LastError.Contains("another agent"));
                agent.Ack(batch);
                Throws<PmaException>(() => agent.Ack(batch), "second ack", e => e.Code == PmaResult.AlreadyAcked);
            }
            using (Batch again = agent.Fetch(10))
            {
                Check(again.Count == 0, "acknowledged mail does not come again");
            }

            // Eight threads share one agent.
            var threads = new List<Thread>();
            int threadFailures = 0;
            for (int i = 0; i < 8; i++)
            {
                var th = new Thread(() =>
                {
                    try
                    {
                        using (Batch b = agent.Fetch(1)) { }
                        using (Report r = agent.TestConnection())
                        {
                            if (!r.Healthy) Interlocked.Increment(ref threadFailures);
                        }
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref threadFailures);
                    }
                });
                th.Start();
                threads.Add(th);
            }
            foreach (var th in threads) th.Join();
            Check(threadFailures == 0, "8 threads on one agent");
        }

        PmaLog.SetHandler(null, PmaLogLevel.Off);
        int seen;
        lock (records)
        {
            seen = records.Count;
            Check(seen > 0, "log records forwarded");
            Check(!records.Exists(r => r.Contains(Env("PMA_PASSWORD"))), "no password in any log record");
        }
        using (var agent = new Agent(Mailbox("cs-main", user), state))
        using (Report r = agent.TestConnection()) { }
        lock (records)
        {
            Check(records.Count == seen, "no record after the handler was removed");
        }
    }

    static void WrongPasswordAndFinalizer(string state)
    {
        string json = "{\"name\": \"cs-wrong\", \"email\": \"" + Env("PMA_TEST_USER") + "\", \"username\": \"" +
                      Env("PMA_TEST_USER") + "\", \"password\": \"not-the-password\", \"imap\": {\"server\": \"127.0.0.1\"," +
                      " \"port\": " + Env("PMA_IMAPS_PORT") + ", \"ca_file\": \"" + Env("PMA_CA_FILE") + "\"}}";
        using (var agent = new Agent(json, state))
        {
            using (Report report = agent.TestConnection())
            {
                Check(!report.Healthy, "wrong password is unhealthy");
                Step failed = Array.Find(report.Steps, s => s.Status == PmaStepStatus.Failed);
                Check(failed != null && failed.Name == "authenticate" && failed.Result == PmaResult.LoginFailed
                      && failed.Fix != null, "authenticate failed with a fix");
            }
            Throws<PmaException>(() => agent.Fetch(5), "fetch with a wrong password",
                e => e.Code == PmaResult.LoginFailed && !e.Message.Contains("not-the-password"));
            Throws<PmaException>(() => new Agent(json, state), "locked", e => e.Code == PmaResult.Io);
        }
        // An agent never disposed is freed by its SafeHandle's finalizer (the lock is released).
        MakeAndDrop(json, state);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using (var again = new Agent(json, state)) { }
        Check(true, "finalizer released the mailbox lock");
    }

    static void MakeAndDrop(string json, string state)
    {
        new Agent(json, state);
    }

    static void OAuthSharedMailbox(string state)
    {
        string shared = Environment.GetEnvironmentVariable("PMA_TEST_OAUTH_SHARED");
        if (string.IsNullOrEmpty(shared))
        {
            Console.WriteLine("OAuth + shared mailbox: not run (PMA_TEST_OAUTH_SHARED not set; scripts/test-csharp sets it)");
            return;
        }
        string user = Env("PMA_TEST_OAUTH_USER");
        Func<string, string, string> sharedJson = (name, mailbox) =>
            "{\"name\": \"" + name + "\", \"email\": \"" + mailbox + "\", \"username\": \"" + user + "\"," +
            " \"password_env\": \"PMA_PASSWORD\", \"imap\": {\"server\": \"127.0.0.1\", \"port\": " +
            Env("PMA_IMAPS_PORT") + ", \"ca_file\": \"" + Env("PMA_CA_FILE") + "\"}," +
            " \"oauth\": {\"enabled\": true, \"shared_mailbox\": true, \"flow\": \"password\"," +
            " \"authority\": \"" + Env("PMA_IDP_URL") + "\"}}";
        // Without Full Access the shared mailbox is refused, and the fix says what to grant.
        using (var denied = new Agent(sharedJson("cs-oauth-ungranted", Env("PMA_TEST_OAUTH_UNGRANTED")), state))
        {
            denied.SetOAuthCredentials(Env("PMA_TEST_OAUTH_APP"), Env("PMA_TEST_OAUTH_TENANT"));
            using (Report report = denied.TestConnection())
            {
                Step failed = Array.Find(report.Steps, s => s.Status == PmaStepStatus.Failed);
                Check(failed != null && failed.Name == "authenticate" && failed.Result == PmaResult.SharedMailboxDenied
                      && failed.Fix != null && failed.Fix.Contains("Full Access"), "ungranted shared mailbox: " + report.Json);
            }
        }
        string json = sharedJson("cs-oauth-shared", shared);
        using (var agent = new Agent(json, state))
        {
            agent.SetOAuthCredentials(Env("PMA_TEST_OAUTH_APP"), Env("PMA_TEST_OAUTH_TENANT"));
            using (Report report = agent.TestConnection())
            {
                Check(report.Healthy, "OAuth shared mailbox healthy: " + report.Json);
                Check(report.Steps.Length == 6 && report.Steps[0].Name == "token", "token step first");
                Check(report.Json.Contains("XOAUTH2 as " + shared), "XOAUTH2 names the shared mailbox");
            }
            agent.RegisterSent("<cs-notify-1@helpdesk.example>", "T-1");
            try
            {
                agent.RegisterSent("", "T-1");
                Check(false, "an empty Message-ID is refused");
            }
            catch (PmaException e)
            {
                Check(e.Code == PmaResult.Config, "empty Message-ID: " + e.Code);
            }
            using (Batch batch = agent.Fetch(10))
            {
                Check(batch.Count == 3, "3 tickets from the shared mailbox, got " + batch.Count);
                agent.Ack(batch);
            }
            using (Batch again = agent.Fetch(10))
            {
                Check(again.Count == 0, "shared mailbox: acknowledged mail does not come again");
            }
        }
        Console.WriteLine("OAuth + shared mailbox: real fetch done");
    }

    static int Main()
    {
        string state = Env("PMA_TEST_STATE");
        StaticFunctions();
        Misuse(state);
        TypedModelRawAndOmitted(state);
        TruthAndSecrets(state);
        PartialAck(state);
        WaitAndCancel(state);
        DeviceLogin(state);
        ErrorsPerThread(state);
        RealFetch(state);
        WrongPasswordAndFinalizer(state);
        OAuthSharedMailbox(state);
        Console.WriteLine("Tests.exe: " + checks + " checks, " + failures + " failed (library " + Agent.Version + ")");
        return failures == 0 ? 0 : 1;
    }
}
