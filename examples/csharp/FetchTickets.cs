// Fetches new tickets from one mailbox, stores each as a file, then acknowledges them.
//
//   FetchTickets MAILBOX.json OUTDIR
//
// MAILBOX.json holds one entry of the "mailboxes" array (see the README). For OAuth 2.0 set
// PMA_APPLICATION_ID and PMA_DIRECTORY_ID (and PMA_CLIENT_SECRET for app-only access).
// Build (Mono): mcs -out:FetchTickets.exe -r:PsaMailAgent.dll FetchTickets.cs
// (.NET 6+: add bindings/csharp/PsaMailAgent.cs to the project.) libpsa_mail_agent must be on
// the library path (LD_LIBRARY_PATH, or next to the executable on Windows).
using System;
using System.IO;
using PsaMailAgent;

static class FetchTickets
{
    static int Main(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: FetchTickets MAILBOX.json OUTDIR");
            return 2;
        }
        try
        {
            using (var agent = new Agent(File.ReadAllText(args[0]), "./state"))
            {
                string app = Environment.GetEnvironmentVariable("PMA_APPLICATION_ID");
                string tenant = Environment.GetEnvironmentVariable("PMA_DIRECTORY_ID");
                if (app != null && tenant != null)
                {
                    agent.SetOAuthCredentials(app, tenant, Environment.GetEnvironmentVariable("PMA_CLIENT_SECRET"));
                }

                // Diagnose first: every step, and for a failure its cause and fix.
                using (Report report = agent.TestConnection())
                {
                    foreach (Step step in report.Steps)
                    {
                        Console.WriteLine("{0,-12} {1,-7} {2}", step.Name, step.Status, step.Detail);
                        if (step.Fix != null)
                        {
                            Console.WriteLine("             fix: " + step.Fix);
                        }
                    }
                    if (!report.Healthy)
                    {
                        return 1;
                    }
                }

                Directory.CreateDirectory(args[1]);
                int stored = 0;
                while (true)
                {
                    using (Batch batch = agent.Fetch(50))
                    {
                        if (batch.Count == 0)
                        {
                            break;
                        }
                        // Store every ticket (a PSA creates its tickets here; dedupe_key in the
                        // JSON recognises one delivered twice after a crash).
                        for (int i = 0; i < batch.Count; i++)
                        {
                            int number = stored + i + 1;
                            File.WriteAllText(Path.Combine(args[1], "ticket-" + number + ".json"), batch.TicketJson(i));
                            for (int a = 0; a < batch.AttachmentCount(i); a++)
                            {
                                File.WriteAllBytes(Path.Combine(args[1], "ticket-" + number + "-attachment-" + a + ".bin"),
                                    batch.Attachment(i, a));
                            }
                        }
                        // Acknowledge only after storing: otherwise the tickets come again next time.
                        agent.Ack(batch);
                        stored += batch.Count;
                    }
                }
                Console.WriteLine("stored " + stored + " ticket(s) in " + args[1]);
                return 0;
            }
        }
        catch (PmaException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
    }
}
