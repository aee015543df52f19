// A long-lived host: turns mail into ticket files as it arrives, until told to stop.
//
//   WatchMailbox MAILBOX.json OUTDIR
//
// - The password comes from the host (here PMA_MAILBOX_PASSWORD stands in for the PSA's vault)
//   through SetPassword, not from the JSON.
// - Between fetches it waits for new mail with WaitForMailAsync (IMAP IDLE), not by polling.
// - When storing a ticket fails, only the tickets stored before are acknowledged
//   (AckTicketsAsync); the others come again with the next fetch.
// - Ctrl-C, or a file OUTDIR/STOP, cancels the CancellationToken: the wait (or fetch, or ack)
//   in progress ends at once.
// Build (Mono): mcs -out:WatchMailbox.exe -r:PsaMailAgent.dll WatchMailbox.cs
using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using PsaMailAgent;

static class WatchMailbox
{
    static int Main(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: WatchMailbox MAILBOX.json OUTDIR");
            return 2;
        }
        using (var stop = new CancellationTokenSource())
        {
            Console.CancelKeyPress += (sender, e) => { e.Cancel = true; stop.Cancel(); };
            Directory.CreateDirectory(args[1]);
            string stopFile = Path.Combine(args[1], "STOP");
            var watcher = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested && !File.Exists(stopFile))
                {
                    await Task.Delay(200);
                }
                stop.Cancel();
            });
            try
            {
                int stored = Run(args[0], args[1], stop.Token).GetAwaiter().GetResult();
                Console.WriteLine("stopped: " + stored + " ticket(s) stored");
                return 0;
            }
            catch (PmaException e)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
            finally
            {
                stop.Cancel();
                watcher.GetAwaiter().GetResult();
            }
        }
    }

    static async Task<int> Run(string mailboxFile, string outDir, CancellationToken stop)
    {
        int stored = 0;
        using (var agent = new Agent(File.ReadAllText(mailboxFile), "./state"))
        {
            string password = Environment.GetEnvironmentVariable("PMA_MAILBOX_PASSWORD");
            if (password != null)
            {
                agent.SetPassword(password);
            }
            try
            {
                while (true)
                {
                    using (Batch batch = await agent.FetchAsync(50, stop))
                    {
                        int done = 0;
                        foreach (Ticket ticket in batch)
                        {
                            if (!Store(ticket, outDir, stored + done + 1))
                            {
                                break;
                            }
                            done++;
                        }
                        // Acknowledge exactly what was stored: the rest comes again next time.
                        await agent.AckTicketsAsync(batch, done, stop);
                        stored += done;
                        if (done < batch.Count)
                        {
                            Console.WriteLine("stored " + done + " of " + batch.Count + " ticket(s); acknowledged those, the rest comes again");
                            await Task.Delay(TimeSpan.FromSeconds(1), stop); // e.g. the PSA's database is down
                            continue;
                        }
                        if (batch.Count > 0)
                        {
                            Console.WriteLine("stored " + batch.Count + " ticket(s), " + stored + " in all");
                            continue; // more may be waiting
                        }
                    }
                    // Nothing waiting: wait for new mail (IDLE), at most 25 minutes, then look again.
                    await agent.WaitForMailAsync(TimeSpan.FromMinutes(25), stop);
                }
            }
            catch (OperationCanceledException)
            {
                // Stop requested: the call in progress was cancelled; nothing half-done remains.
            }
        }
        return stored;
    }

    static bool Store(Ticket ticket, string outDir, int number)
    {
        try
        {
            File.WriteAllText(Path.Combine(outDir, "ticket-" + number + ".json"), ticket.Json);
            Console.WriteLine("ticket " + number + ": " + ticket.Subject + " (from " + ticket.From + ")");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
