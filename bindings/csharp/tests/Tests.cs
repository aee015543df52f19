// Test program of the .NET binding, run under Mono by scripts/test-csharp against the Dovecot
// harness. Environment (set by the script): PMA_TEST_USER (a fresh mailbox holding 3 unread
// messages, the second with hello.txt), PMA_TEST_USER2 (another fresh mailbox), PMA_TEST_STATE
// (a fresh state directory), and the harness's PMA_CA_FILE, PMA_IMAPS_PORT, PMA_PASSWORD.
// Optional OAuth + shared mailbox run: PMA_TEST_OAUTH_SHARED (the shared mailbox holding 3
// messages), PMA_TEST_OAUTH_USER (its delegate), PMA_IDP_URL, PMA_TEST_OAUTH_APP,
// PMA_TEST_OAUTH_TENANT.
using System;
using System.Collections.Generic;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
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
        RealFetch(state);
        WrongPasswordAndFinalizer(state);
        OAuthSharedMailbox(state);
        Console.WriteLine("Tests.exe: " + checks + " checks, " + failures + " failed (library " + Agent.Version + ")");
        return failures == 0 ? 0 : 1;
    }
}
