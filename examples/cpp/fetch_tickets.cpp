// Fetches new tickets from one mailbox, stores each as a file, then acknowledges them.
//
//   fetch_tickets MAILBOX.json OUTDIR
//
// MAILBOX.json holds one entry of the "mailboxes" array (see the README). For OAuth 2.0 set
// PMA_APPLICATION_ID and PMA_DIRECTORY_ID (and PMA_CLIENT_SECRET for app-only access).
// Build: c++ -std=c++17 fetch_tickets.cpp -Iinclude -Ibindings/cpp -Ltarget/release -lpsa_mail_agent
#include "psa_mail_agent.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const std::filesystem::path &path, const void *data, size_t size) {
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
    if (!out.flush()) {
        throw std::runtime_error("cannot write " + path.string());
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " MAILBOX.json OUTDIR\n";
        return 2;
    }
    try {
        pma::Agent agent(read_file(argv[1]), std::string("./state"));
        const char *app = std::getenv("PMA_APPLICATION_ID");
        const char *tenant = std::getenv("PMA_DIRECTORY_ID");
        if (app != nullptr && tenant != nullptr) {
            const char *secret = std::getenv("PMA_CLIENT_SECRET");
            agent.set_oauth_credentials(app, tenant,
                                        secret ? std::optional<std::string>(secret) : std::nullopt);
        }

        // Diagnose first: every step, and for a failure its cause and fix.
        pma::Report report = agent.test_connection();
        for (const pma::Step &step : report.steps()) {
            const char *status = step.status == PMA_STEP_PASSED   ? "ok  "
                                 : step.status == PMA_STEP_FAILED ? "FAIL"
                                                                  : "skip";
            std::cout << step.name << "  " << status << "  " << step.detail << "\n";
            if (step.fix) {
                std::cout << "    fix: " << *step.fix << "\n";
            }
        }
        if (!report.healthy()) {
            return 1;
        }

        std::filesystem::path dir(argv[2]);
        std::filesystem::create_directories(dir);
        size_t stored = 0;
        for (;;) {
            pma::Batch batch = agent.fetch(50);
            if (batch.empty()) {
                break;
            }
            // Store every ticket (a PSA creates its tickets here; dedupe_key in the JSON
            // recognises one delivered twice after a crash).
            for (size_t i = 0; i < batch.size(); i++) {
                std::string number = std::to_string(stored + i + 1);
                std::string_view json = batch.ticket_json(i);
                write_file(dir / ("ticket-" + number + ".json"), json.data(), json.size());
                for (size_t a = 0; a < batch.attachment_count(i); a++) {
                    pma::Bytes bytes = batch.attachment(i, a);
                    write_file(dir / ("ticket-" + number + "-attachment-" + std::to_string(a) + ".bin"),
                               bytes.data, bytes.size);
                }
            }
            // Acknowledge only after storing: otherwise the tickets come again next time.
            agent.ack(batch);
            stored += batch.size();
        }
        std::cout << "stored " << stored << " ticket(s) in " << dir.string() << "\n";
        return 0;
    } catch (const pma::Error &e) {
        std::cerr << e.what() << "\n";
        return 1;
    } catch (const std::exception &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
