// A double-entry ledger: accounts, balanced transactions, and a trial balance.
// Fixture for the autocomplete replay benchmark.
package com.example.ledger;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;

public final class Ledger {

    public enum AccountType {
        ASSET, LIABILITY, EQUITY, INCOME, EXPENSE;

        /** Whether a debit increases this kind of account. */
        public boolean debitNormal() {
            return this == ASSET || this == EXPENSE;
        }
    }

    public record Account(String code, String name, AccountType type) {
        public Account {
            Objects.requireNonNull(code, "code");
            Objects.requireNonNull(type, "type");
            if (code.isBlank()) {
                throw new IllegalArgumentException("account code must not be blank");
            }
        }
    }

    public record Entry(String account, BigDecimal debit, BigDecimal credit) {
        public Entry {
            debit = scale(debit);
            credit = scale(credit);
            if (debit.signum() < 0 || credit.signum() < 0) {
                throw new IllegalArgumentException("amounts must not be negative");
            }
            if (debit.signum() != 0 && credit.signum() != 0) {
                throw new IllegalArgumentException("an entry is either a debit or a credit");
            }
        }

        public BigDecimal signed(AccountType type) {
            BigDecimal amount = debit.subtract(credit);
            return type.debitNormal() ? amount : amount.negate();
        }
    }

    public record Transaction(long id, LocalDate date, String memo, List<Entry> entries) {}

    public static final class UnbalancedException extends RuntimeException {
        private final BigDecimal difference;

        public UnbalancedException(BigDecimal difference) {
            super("transaction does not balance by " + difference.toPlainString());
            this.difference = difference;
        }

        public BigDecimal difference() {
            return difference;
        }
    }

    private static final int SCALE = 2;

    private final Map<String, Account> accounts = new HashMap<>();
    private final List<Transaction> journal = new ArrayList<>();
    private final Map<String, BigDecimal> balances = new HashMap<>();
    private long nextId = 1;

    static BigDecimal scale(BigDecimal amount) {
        if (amount == null) {
            return BigDecimal.ZERO.setScale(SCALE);
        }
        return amount.setScale(SCALE, RoundingMode.HALF_EVEN);
    }

    public Account open(String code, String name, AccountType type) {
        Account account = new Account(code, name, type);
        if (accounts.putIfAbsent(code, account) != null) {
            throw new IllegalStateException("account " + code + " already exists");
        }
        balances.put(code, scale(BigDecimal.ZERO));
        return account;
    }

    public Optional<Account> account(String code) {
        return Optional.ofNullable(accounts.get(code));
    }

    public Transaction post(LocalDate date, String memo, List<Entry> entries) {
        if (entries.size() < 2) {
            throw new IllegalArgumentException("a transaction needs at least two entries");
        }
        BigDecimal debits = BigDecimal.ZERO;
        BigDecimal credits = BigDecimal.ZERO;
        for (Entry entry : entries) {
            if (!accounts.containsKey(entry.account())) {
                throw new IllegalArgumentException("unknown account " + entry.account());
            }
            debits = debits.add(entry.debit());
            credits = credits.add(entry.credit());
        }
        BigDecimal difference = debits.subtract(credits);
        if (difference.signum() != 0) {
            throw new UnbalancedException(difference);
        }
        Transaction tx = new Transaction(nextId++, date, memo, List.copyOf(entries));
        journal.add(tx);
        for (Entry entry : tx.entries()) {
            Account account = accounts.get(entry.account());
            balances.merge(account.code(), entry.signed(account.type()), BigDecimal::add);
        }
        return tx;
    }

    public BigDecimal balance(String code) {
        BigDecimal balance = balances.get(code);
        if (balance == null) {
            throw new IllegalArgumentException("unknown account " + code);
        }
        return balance;
    }

    public BigDecimal balanceAsOf(String code, LocalDate date) {
        Account account = accounts.get(code);
        if (account == null) {
            throw new IllegalArgumentException("unknown account " + code);
        }
        BigDecimal total = scale(BigDecimal.ZERO);
        for (Transaction tx : journal) {
            if (tx.date().isAfter(date)) {
                continue;
            }
            for (Entry entry : tx.entries()) {
                if (entry.account().equals(code)) {
                    total = total.add(entry.signed(account.type()));
                }
            }
        }
        return total;
    }

    public List<Transaction> journal() {
        return Collections.unmodifiableList(journal);
    }

    /** Debit and credit columns per account, sorted by code; the two totals must agree. */
    public Map<String, BigDecimal[]> trialBalance() {
        Map<String, BigDecimal[]> rows = new TreeMap<>();
        for (Account account : accounts.values()) {
            BigDecimal balance = balances.get(account.code());
            BigDecimal zero = scale(BigDecimal.ZERO);
            boolean debitSide = account.type().debitNormal() == (balance.signum() >= 0);
            BigDecimal amount = balance.abs();
            rows.put(account.code(), debitSide ? new BigDecimal[] {amount, zero} : new BigDecimal[] {zero, amount});
        }
        return rows;
    }

    public Transaction closePeriod(LocalDate date, String retainedEarnings) {
        Account target = accounts.get(retainedEarnings);
        if (target == null || target.type() != AccountType.EQUITY) {
            throw new IllegalArgumentException(retainedEarnings + " is not an equity account");
        }
        List<Entry> entries = new ArrayList<>();
        BigDecimal net = BigDecimal.ZERO;
        for (Account account : accounts.values()) {
            if (account.type() != AccountType.INCOME && account.type() != AccountType.EXPENSE) {
                continue;
            }
            BigDecimal balance = balances.get(account.code());
            if (balance.signum() == 0) {
                continue;
            }
            if (account.type() == AccountType.INCOME) {
                entries.add(new Entry(account.code(), balance, null));
                net = net.add(balance);
            } else {
                entries.add(new Entry(account.code(), null, balance));
                net = net.subtract(balance);
            }
        }
        if (net.signum() >= 0) {
            entries.add(new Entry(retainedEarnings, null, net));
        } else {
            entries.add(new Entry(retainedEarnings, net.negate(), null));
        }
        return post(date, "close period", entries);
    }

    public static void main(String[] args) {
        Ledger ledger = new Ledger();
        ledger.open("1000", "Cash", AccountType.ASSET);
        ledger.open("3000", "Retained earnings", AccountType.EQUITY);
        ledger.open("4000", "Sales", AccountType.INCOME);
        ledger.open("5000", "Rent", AccountType.EXPENSE);
        LocalDate day = LocalDate.of(2024, 3, 1);
        ledger.post(day, "cash sale", List.of(
                new Entry("1000", new BigDecimal("250.00"), null),
                new Entry("4000", null, new BigDecimal("250.00"))));
        ledger.post(day.plusDays(1), "rent", List.of(
                new Entry("5000", new BigDecimal("100.00"), null),
                new Entry("1000", null, new BigDecimal("100.00"))));
        ledger.closePeriod(day.plusDays(30), "3000");
        ledger.trialBalance().forEach((code, row) ->
                System.out.printf("%s %10s %10s%n", code, row[0].toPlainString(), row[1].toPlainString()));
    }
}
